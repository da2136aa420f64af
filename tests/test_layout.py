"""The shape of handlers/: subpackages by concern, imports one way, the Lambda package without the
offline tools.

* ``detection`` (records in, findings out; pure) imports nothing of the others;
* ``response`` (the response function and the reads, decisions and alerts the sweep and the
  review share) imports only ``detection``;
* ``sweep`` and ``review`` (the two other functions) import ``detection`` and ``response``;
* ``offline`` (``detect``, ``exposure-review``) may import anything, and nothing imports it.

The Lambda zip carries every module the three functions import and nothing of ``offline``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from stacks import packaging

ROOT = Path(__file__).resolve().parents[1]
HANDLERS = ROOT / "handlers"
PACKAGES = ("detection", "response", "sweep", "review", "offline")
ALLOWED: dict[str, set[str]] = {
    "detection": {"detection"},
    "response": {"detection", "response"},
    "sweep": {"detection", "response", "sweep"},
    "review": {"detection", "response", "review"},
    "offline": set(PACKAGES),
}
ENTRY_POINTS = ("handlers.response.function", "handlers.sweep.function", "handlers.review.function")


def imported_packages(path: Path) -> set[str]:
    """The handlers subpackages ``path`` imports (at module level or inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "handlers" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_handlers_holds_only_the_five_packages() -> None:
    top = sorted(p.name for p in HANDLERS.iterdir() if not p.name.startswith(("_", ".")))
    assert top == sorted(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_go_one_way(package: str) -> None:
    wrong = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) - ALLOWED[package])
        for path in sorted((HANDLERS / package).rglob("*.py"))
        if imported_packages(path) - ALLOWED[package]
    }
    assert wrong == {}, f"{package} may import only {sorted(ALLOWED[package])}"


def test_the_check_sees_an_import_against_the_grain(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "def f():\n    from handlers.offline import prefilter\n    import handlers.sweep.function\n"
    )
    assert imported_packages(module) == {"offline", "sweep"}


def test_the_lambda_zip_holds_what_the_functions_import_and_no_offline_tool(tmp_path: Path) -> None:
    archive = packaging.build_handler_zip(build_dir=tmp_path)
    with zipfile.ZipFile(archive) as zipped:
        names = {name for name in zipped.namelist() if name.endswith(".py")}
    assert not {name for name in names if name.startswith("handlers/offline/")}
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, importlib\n"
            f"for name in {ENTRY_POINTS!r}: importlib.import_module(name)\n"
            "print('\\n'.join(sorted(m.__file__ for n, m in sys.modules.items()"
            " if n.startswith('handlers') and getattr(m, '__file__', None))))",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    imported = {Path(line).resolve().relative_to(ROOT).as_posix() for line in probe.stdout.split()}
    assert imported, "the probe imported nothing"
    assert imported <= names, f"imported but not packaged: {sorted(imported - names)}"
    assert not {name for name in imported if name.startswith("handlers/offline/")}
