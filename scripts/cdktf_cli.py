#!/usr/bin/env python
"""Run the pinned cdktf CLI (``node_modules/.bin/cdktf``) the way users run it, offline-ready.

``package.json``/``package-lock.json`` pin ``cdktf-cli`` exactly; ``make bootstrap`` installs
it with ``npm ci`` when npm is on PATH. This wrapper adds the environment every command needs:

- the Terraform CLI config of ``scripts/terraform_offline.py`` (``TF_CLI_CONFIG_FILE``), which
  installs ``hashicorp/aws`` from ``TF_PROVIDER_MIRROR`` when that is set (unset: downloads);
- ``CDKTF_DISABLE_PLUGIN_CACHE_ENV=1``: otherwise cdktf sets ``TF_PLUGIN_CACHE_DIR`` to
  ``~/.terraform.d/plugin-cache``, overriding the mirror-linked cache and copying the provider;
- ``CHECKPOINT_DISABLE=1`` and ``DISABLE_VERSION_CHECK=1``: no telemetry, no update check.

Usage (what ``make deploy|diff|destroy STACK=<name>`` run)::

    python scripts/cdktf_cli.py deploy STACK [cdktf options ...]
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import terraform_offline  # a sibling script: scripts/ is not a package

REPO_ROOT = terraform_offline.REPO_ROOT
CDKTF_BIN = REPO_ROOT / "node_modules" / ".bin" / "cdktf"
PINNED_VERSION = "0.21.0"
VERBS = ("deploy", "diff", "destroy")
DEFAULT_WORKDIR = REPO_ROOT / "build" / "cdktf-cli"


class CdktfCliError(RuntimeError):
    """The CLI, a stack name or the offline set-up is missing; the message says how to fix it."""


def cdktf_binary(path: Path = CDKTF_BIN) -> Path:
    """The locally installed cdktf CLI, or a :class:`CdktfCliError` saying how to install it."""
    if not path.is_file():
        raise CdktfCliError(
            f"{path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path} not found: "
            f"run `make bootstrap` with npm on PATH (installs cdktf-cli@{PINNED_VERSION} from "
            "package-lock.json with `npm ci`)"
        )
    return path


def cdktf_env(base: dict[str, str] | None = None, workdir: Path = DEFAULT_WORKDIR) -> dict[str, str]:
    """``base`` (default: this process's environment) plus the offline Terraform and quiet cdktf settings."""
    try:
        env = terraform_offline.terraform_env(base, workdir)
    except terraform_offline.OfflineSetupError as exc:
        raise CdktfCliError(str(exc)) from None
    env.update(
        CDKTF_DISABLE_PLUGIN_CACHE_ENV="1",
        CHECKPOINT_DISABLE="1",
        DISABLE_VERSION_CHECK="1",
        JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20",
    )
    return env


def cdktf_command(verb: str, stack: str, extra: list[str] | None = None) -> list[str]:
    """``[cdktf, verb, stack, *extra]``, refusing an unknown verb or an empty stack name."""
    if verb not in VERBS:
        raise CdktfCliError(f"unknown command {verb!r}: expected one of {', '.join(VERBS)}")
    if not stack.strip():
        raise CdktfCliError(
            f"no stack given: make {verb} STACK=<name> (an [[accounts]] name in the config, e.g. sandbox)"
        )
    return [str(cdktf_binary()), verb, stack, *(extra or [])]


def offline_flags(env: dict[str, str], extra: list[str] | None = None) -> list[str]:
    """``--skip-provider-lock`` when the provider comes from the mirror: cdktf's ``terraform providers
    lock`` would ask the registry for every platform's checksums, which fails offline."""
    if terraform_offline.mirror_root(env) is None or "--skip-provider-lock" in (extra or []):
        return []
    return ["--skip-provider-lock"]


def run(verb: str, stack: str, extra: list[str] | None = None, env: dict[str, str] | None = None) -> int:
    """Run ``cdktf <verb> <stack> <extra>`` in the repo root with the offline environment; its exit code."""
    cdktf_command(verb, stack)  # refuse a bad verb, a missing stack or CLI before writing anything
    env = env or cdktf_env()
    command = cdktf_command(verb, stack, [*(extra or []), *offline_flags(env, extra)])
    return subprocess.run(command, cwd=REPO_ROOT, env=env, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if args else 2
    verb, rest = args[0], args[1:]
    stack = rest[0] if rest and not rest[0].startswith("-") else ""
    try:
        return run(verb, stack, rest[1:] if stack else rest)
    except CdktfCliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    os.chdir(REPO_ROOT)
    sys.exit(main())
