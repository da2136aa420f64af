#!/usr/bin/env python
"""Rewrite the golden snapshots in tests/snapshots/ from the current stacks (``make snapshot``).

Review the resulting diff like any code change: it is exactly what the infrastructure
change does to each account's Terraform configuration.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from stacks.config import load_config  # noqa: E402
from stacks.synth import normalised_json, synth_config  # noqa: E402

SNAPSHOT_DIR = REPO_ROOT / "tests" / "snapshots"
# Extra configs (e.g. the s3 state backend), snapshotted to tests/snapshots/configs/<config>/<stack>.json.
EXTRA_CONFIG_DIR = REPO_ROOT / "tests" / "configs"


def main() -> int:
    SNAPSHOT_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="snapshot-synth-") as outdir:
        stacks = synth_config(load_config(), Path(outdir))
    wanted = {f"{name}.json" for name in stacks}
    for stale in SNAPSHOT_DIR.glob("*.json"):
        if stale.name not in wanted:
            stale.unlink()
            print(f"removed {stale.relative_to(REPO_ROOT)}")
    for name, stack in stacks.items():
        path = SNAPSHOT_DIR / f"{name}.json"
        new = normalised_json(stack)
        old = path.read_text() if path.exists() else None
        path.write_text(new)
        print(f"{'unchanged' if old == new else 'updated'} {path.relative_to(REPO_ROOT)}")
    for config_path in sorted(EXTRA_CONFIG_DIR.glob("*.toml")):
        with tempfile.TemporaryDirectory(prefix="snapshot-synth-") as outdir:
            extra = synth_config(load_config(config_path), Path(outdir))
        for name, stack in extra.items():
            path = SNAPSHOT_DIR / "configs" / config_path.stem / f"{name}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            new = normalised_json(stack)
            old = path.read_text() if path.exists() else None
            path.write_text(new)
            print(f"{'unchanged' if old == new else 'updated'} {path.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
