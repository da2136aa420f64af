"""Synthesize stacks to a directory and read them back: shared by tests, snapshots and benchmarks."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from stacks.config import DetectorConfig
from stacks.providers import ProviderOptions

# The asset directory carries a content hash of the handlers package: code changes, not
# infrastructure changes, so snapshots replace it with a placeholder.
_ASSET_HASH = re.compile(r"(assets/[A-Za-z0-9_-]+/)[0-9A-F]{32}(/)")


def synth_config(
    config: DetectorConfig, outdir: Path, options: ProviderOptions | None = None, only: str | None = None
) -> dict[str, dict[str, Any]]:
    """Synthesize every stack (or ``only``) into ``outdir``; return each stack's parsed ``cdk.tf.json``."""
    from stacks.app import build_app  # deferred: loads the cdktf bindings

    build_app(config, options, outdir=str(outdir), only=only).synth()
    return {
        path.parent.name: json.loads(path.read_text())
        for path in sorted((outdir / "stacks").glob("*/cdk.tf.json"))
        if only is None or path.parent.name == only
    }


def normalised_json(stack: dict[str, Any]) -> str:
    """The stack as stable, readable JSON (sorted keys, asset hash replaced) for golden snapshots."""
    text = json.dumps(stack, indent=2, sort_keys=True) + "\n"
    return _ASSET_HASH.sub(r"\1<handlers-package-hash>\2", text)
