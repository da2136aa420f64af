"""The response function's deployment package: a reproducible zip of the ``handlers`` package.

The archive root holds ``handlers/`` so the function's handler is
``handlers.response.handler``. Entries are sorted, timestamps fixed and ``__pycache__``
and compiled files left out, so the same source always gives the same bytes: the asset
hash and Terraform's ``source_code_hash`` change only when the code does.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
HANDLERS_DIR = REPO_ROOT / "handlers"
BUILD_DIR = REPO_ROOT / "build" / "lambda"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can carry
_SKIPPED_DIRS = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo")


def package_files(source: Path = HANDLERS_DIR) -> list[Path]:
    """The files that go into the package, sorted, relative to ``source``'s parent."""
    files = []
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source.parent)
        if not path.is_file() or any(
            part in _SKIPPED_DIRS or part.startswith(".") for part in relative.parts
        ):
            continue
        if path.suffix in _SKIPPED_SUFFIXES:
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
    target = build_dir / digest.hexdigest()[:16] / "handlers.zip"
    if target.exists():
        return target
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
