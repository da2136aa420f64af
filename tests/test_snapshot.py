"""Golden snapshots: each account's synthesized stack, as readable JSON in tests/snapshots/.

An infrastructure change shows up as a diff of these files in the pull request. After an
intended change, refresh them with ``make snapshot`` (``scripts/update_snapshots.py``).
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from stacks.config import load_config
from stacks.synth import normalised_json, synth_config

SNAPSHOT_DIR = Path(__file__).resolve().parent / "snapshots"


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory) -> dict[str, str]:
    stacks = synth_config(load_config(), tmp_path_factory.mktemp("snapshot"))
    return {name: normalised_json(stack) for name, stack in stacks.items()}


def test_every_stack_has_a_snapshot(synthesized):
    assert sorted(p.stem for p in SNAPSHOT_DIR.glob("*.json")) == sorted(synthesized), (
        "stacks and snapshots differ; run `make snapshot`"
    )


@pytest.mark.parametrize("name", [account.name for account in load_config().accounts])
def test_stack_matches_its_snapshot(synthesized, name):
    expected = (SNAPSHOT_DIR / f"{name}.json").read_text()
    actual = synthesized[name]
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                f"snapshots/{name}.json",
                "synth",
            )
        )
        pytest.fail(f"{name} differs from its snapshot (run `make snapshot` if intended):\n{diff[:6000]}")


def test_snapshots_carry_no_machine_paths():
    for path in SNAPSHOT_DIR.glob("*.json"):
        text = path.read_text()
        assert str(Path(__file__).resolve().parents[1]) not in text, path
        assert "/tmp/" not in text, path
