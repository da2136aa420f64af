"""The functions' deployment package: a reproducible zip of the ``handlers`` package, without
its ``offline`` tools.

The archive root holds ``handlers/`` so the function's handler is
``handlers.response.function.handler``. Entries are sorted, timestamps fixed and local
``__pycache__`` and compiled files left out, so the same source always gives the same bytes:
the asset hash and Terraform's ``source_code_hash`` change only when the code does.

Lambda cannot write bytecode into ``/var/task``, so every cold start would compile the
handler modules (~60-90 ms). When a Python of the Lambda runtime's version is at hand
(``LAMBDA_PYTHON``, else ``python3.12`` on PATH), the package also carries bytecode compiled
by it: unchecked-hash pycs (no timestamp check) with ``/var/task`` as their path, so they are
as reproducible as the sources. Without one the package is sources only.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
HANDLERS_DIR = REPO_ROOT / "handlers"
BUILD_DIR = REPO_ROOT / "build" / "lambda"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can carry
_SKIPPED_DIRS = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo")
# handlers/offline holds the CLI tools (detect, exposure-review): no function imports them.
_OFFLINE_PACKAGE = "offline"
LAMBDA_PYTHON_VERSION = "3.12"  # stacks/response_function.py deploys python3.12
LAMBDA_TASK_ROOT = "/var/task"


def lambda_python() -> str | None:
    """A Python of the Lambda runtime's version to precompile with, or ``None``."""
    candidate = os.environ.get("LAMBDA_PYTHON") or shutil.which(f"python{LAMBDA_PYTHON_VERSION}")
    if not candidate:
        return None
    return candidate if python_version(candidate) == LAMBDA_PYTHON_VERSION else None


def python_version(candidate: str) -> str | None:
    """The ``major.minor`` version the interpreter ``candidate`` reports, or ``None`` if it cannot run."""
    try:
        probe = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except OSError:
        return None
    return probe.stdout.strip() if probe.returncode == 0 else None


def compiled(contents: list[tuple[str, bytes]], python: str) -> list[tuple[str, bytes]]:
    """``(name, bytes)`` of the bytecode ``python`` compiles from the ``.py`` entries of ``contents``."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, data in contents:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)
        subprocess.run(
            [
                *(python, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash"),
                *("-s", str(root), "-p", LAMBDA_TASK_ROOT, str(root / "handlers")),
            ],
            check=True,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": ""},
        )
        return sorted((path.relative_to(root).as_posix(), path.read_bytes()) for path in root.rglob("*.pyc"))


def package_files(source: Path = HANDLERS_DIR) -> list[Path]:
    """The files that go into the package, sorted, relative to ``source``'s parent."""
    files = []
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source.parent)
        if not path.is_file() or any(
            part in _SKIPPED_DIRS or part.startswith(".") for part in relative.parts
        ):
            continue
        if path.suffix in _SKIPPED_SUFFIXES or relative.parts[1:2] == (_OFFLINE_PACKAGE,):
            continue
        files.append(relative)
    return files


def build_handler_zip(source: Path = HANDLERS_DIR, build_dir: Path = BUILD_DIR) -> Path:
    """Write the deterministic zip of ``source`` into ``build_dir`` and return its path.

    The file name carries the content hash, so concurrent builds of different code never
    overwrite each other and an unchanged package is not rewritten.
    """
    digest = hashlib.sha256()
    contents: list[tuple[str, bytes]] = []
    for relative in package_files(source):
        data = (source.parent / relative).read_bytes()
        name = relative.as_posix()
        digest.update(name.encode() + b"\0" + data + b"\0")
        contents.append((name, data))
    python = lambda_python()
    if python:
        digest.update(f"bytecode {LAMBDA_PYTHON_VERSION}".encode())
    target = build_dir / digest.hexdigest()[:16] / "handlers.zip"
    if target.exists():
        return target
    if python:
        contents = sorted(contents + compiled(contents, python))
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, data in contents:
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    partial.replace(target)
    return target
