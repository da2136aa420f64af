#!/usr/bin/env python
"""cdktf entry point: one stack per account in ``detector.toml``.

``cdktf synth`` / ``cdktf deploy <name>`` run this (see cdktf.json); so does plain
``python main.py``. ``DETECTOR_CONFIG`` names another config file; ``DETECTOR_AWS_ENDPOINT``
and ``DETECTOR_PLAN_DEMO`` are for the local emulator and the plan demo only.
"""

from __future__ import annotations

import os
import sys

from stacks.config import DEFAULT_CONFIG_PATH, ConfigError, blind_spot_warnings, load_config


def main() -> int:
    try:
        config = load_config(os.environ.get("DETECTOR_CONFIG") or DEFAULT_CONFIG_PATH)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    for warning in blind_spot_warnings(config):
        print(f"warning: {warning}", file=sys.stderr)
    # Imported after validation: a config error should not wait for the bindings to load.
    from stacks.app import build_app
    from stacks.providers import ProviderOptions

    build_app(config, ProviderOptions.from_environment()).synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
