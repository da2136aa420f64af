#!/usr/bin/env python
"""``make deploy-local``: deploy the demo stack with the pinned cdktf CLI to a local moto server.

1. start moto on 127.0.0.1 on a free port (``demo/emulator.py``);
2. ``cdktf deploy demo --auto-approve`` with ``DETECTOR_CONFIG=demo/detector.demo.toml`` and
   ``DETECTOR_AWS_ENDPOINT=<moto url>`` (every provider endpoint at the emulator, test keys:
   ``stacks/providers.py``) and the offline Terraform set-up of ``scripts/cdktf_cli.py``;
3. print the stack outputs, the number of resources and the deploy time;
4. with ``--diff``: ``cdktf diff``, then report every attribute the plan would change; drift
   other than the known moto gaps (:data:`KNOWN_MOTO_GAPS`) exits 1. With ``--destroy``:
   ``cdktf destroy`` before stopping;
5. stop moto by its PID and remove the temporary synth output and state, also on a failure,
   Ctrl-C or SIGTERM. Nothing outlives the run: moto keeps its resources in memory.

Never touches AWS: the providers sign with the literal test keys and any AWS_* credentials of
the calling shell are removed from cdktf's environment.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "scripts")]

import cdktf_cli  # noqa: E402  (sibling script)
import terraform_offline  # noqa: E402  (sibling script)

from demo import terraform_run  # noqa: E402
from demo.closing_session import ClosingSession, stop_moto_and_remove  # noqa: E402
from demo.emulator import MotoServer  # noqa: E402
from stacks.config import load_config  # noqa: E402
from stacks.providers import ENDPOINT_ENV, PLAN_DEMO_ENV  # noqa: E402

DEMO_CONFIG = REPO_ROOT / "demo" / "detector.demo.toml"
# (resource type, attribute) -> why a plan right after an apply proposes to change it against moto.
# Real AWS returns these; anything else in a re-plan is drift of our own.
KNOWN_MOTO_GAPS: dict[tuple[str, str], str] = {
    ("aws_lambda_function", "dead_letter_config"): "moto's GetFunction omits DeadLetterConfig",
    ("aws_lambda_function", "logging_config"): "moto's GetFunction omits LoggingConfig",
    ("aws_sqs_queue", "redrive_policy"): (
        "moto returns RedrivePolicy as json.dumps() with spaces (moto/sqs/models.py); the provider "
        "plans the compact form whatever the config's whitespace. Whitespace-only differences only"
    ),
}
# Gaps that only count when both sides are the same JSON document (a real change still fails).
WHITESPACE_ONLY_GAPS = frozenset({("aws_sqs_queue", "redrive_policy")})
_PLAN_SUMMARY = re.compile(r"Plan: (\d+) to add, (\d+) to change, (\d+) to destroy")
Say = Callable[[str], None]


class LocalDeployError(RuntimeError):
    """A cdktf or Terraform step failed; the message carries the tail of its output."""


@dataclass(frozen=True)
class StepResult:
    """One cdktf command: its verb, wall time and full (colourless) output."""

    verb: str
    seconds: float
    output: str


Drift = dict[str, dict[str, tuple[Any, Any]]]  # address -> attribute -> (before, after)


def plan_drift(plan: dict[str, Any]) -> Drift:
    """Every top-level attribute the plan changes, with its value before and after, by resource address.

    A create, delete or replace shows as the pseudo-attribute ``<create>``, ``<delete>``, ... .
    """
    drift: Drift = {}
    for change in plan.get("resource_changes") or []:
        actions = change["change"]["actions"]
        if actions in (["no-op"], ["read"]):
            continue
        if actions != ["update"]:
            drift[change["address"]] = {f"<{'/'.join(actions)}>": (None, None)}
            continue
        before = change["change"].get("before") or {}
        after = change["change"].get("after") or {}
        unknown = change["change"].get("after_unknown") or {}
        drift[change["address"]] = {
            key: (before.get(key), "(known after apply)" if unknown.get(key) is True else after.get(key))
            for key in sorted(set(before) | set(after))
            if before.get(key) != after.get(key) or unknown.get(key) is True
        }
    return drift


def is_moto_gap(address: str, attribute: str, before: Any, after: Any) -> bool:
    """Whether this change is one of :data:`KNOWN_MOTO_GAPS` (not a difference real AWS would show)."""
    gap = (address.split(".", 1)[0], attribute)
    if gap not in KNOWN_MOTO_GAPS:
        return False
    if gap in WHITESPACE_ONLY_GAPS:
        try:
            return json.loads(before) == json.loads(after)
        except (TypeError, ValueError):
            return False
    return True


def unexpected_drift(drift: Drift) -> dict[str, set[str]]:
    """The attributes of ``drift`` that are not known moto gaps, by address (empty: a clean re-plan)."""
    left: dict[str, set[str]] = {}
    for address, changes in drift.items():
        rest = {name for name, (old, new) in changes.items() if not is_moto_gap(address, name, old, new)}
        if rest:
            left[address] = rest
    return left


def state_resource_count(state_path: Path) -> int:
    """Managed resource instances in a local state file (0 when it does not exist)."""
    if not state_path.exists():
        return 0
    state = json.loads(state_path.read_text())
    return sum(
        len(r.get("instances") or []) for r in state.get("resources") or [] if r.get("mode") == "managed"
    )


class LocalCdktf(ClosingSession):
    """The demo config's stack, deployed by the cdktf CLI to a moto server it owns (context manager)."""

    def __init__(self, config_path: Path = DEMO_CONFIG, say: Say = print, stream: bool = True) -> None:
        config = load_config(config_path)
        if len(config.accounts) != 1:
            raise LocalDeployError(
                f"{config_path}: expected exactly one account, found {len(config.accounts)}"
            )
        if config.state.backend != "local":
            raise LocalDeployError(f"{config_path}: [state] backend must be local for the emulator")
        cdktf_cli.cdktf_binary()  # the CLI missing is an error before anything starts
        self.config_path = config_path
        self.stack = config.accounts[0].name
        self.say = say
        self.stream = stream
        self.workdir = Path(tempfile.mkdtemp(prefix="s3-detector-cdktf-"))
        self.outdir = self.workdir / "cdktf.out"
        self.stack_dir = self.outdir / "stacks" / self.stack
        # The stack's LocalBackend path (../../../terraform.<name>.tfstate) lands in the workdir.
        self.state_path = self.workdir / f"terraform.{self.stack}.tfstate"
        self.server = MotoServer(config.accounts[0].account_id, self.workdir / "moto.log")
        self.env: dict[str, str] = {}

    def open(self) -> None:
        """Entering the session starts moto and cdktf's environment."""
        self.start()

    def start(self) -> None:
        """Start moto and build cdktf's environment (offline Terraform config, emulator endpoint)."""
        self.server.start()
        self.say(f"moto: listening on {self.server.url} (pid {self.server.pid})")
        try:
            env = cdktf_cli.cdktf_env(workdir=self.workdir / "terraform-cli")
        except cdktf_cli.CdktfCliError as exc:
            raise LocalDeployError(str(exc)) from None
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            env.pop(name, None)
        env.pop(PLAN_DEMO_ENV, None)
        env.update(
            {
                "DETECTOR_CONFIG": str(self.config_path),
                ENDPOINT_ENV: self.server.url,
                "AWS_EC2_METADATA_DISABLED": "true",
                "CI": "1",  # cdktf prints plain lines instead of redrawing a spinner
            }
        )
        self.env = env

    def cdktf(self, verb: str, *extra: str) -> StepResult:
        """Run ``cdktf <verb> <stack> ...`` into the workdir's output; raise on a non-zero exit."""
        flags = [*extra, "--output", str(self.outdir), "--no-color", *cdktf_cli.offline_flags(self.env)]
        command = cdktf_cli.cdktf_command(verb, self.stack, flags)
        log_path = self.workdir / f"cdktf-{verb}.log"
        started = time.monotonic()
        lines: list[str] = []
        with log_path.open("a") as log:
            process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            assert process.stdout is not None
            try:
                for line in process.stdout:
                    log.write(line)
                    lines.append(line)
                    if self.stream:
                        print(line, end="", flush=True)
                code = process.wait()
            except BaseException:
                terraform_run.stop_gracefully(process)  # let cdktf/Terraform save state, then be gone
                raise
        output = "".join(lines)
        if code != 0:
            tail = "\n".join(output.strip().splitlines()[-30:])
            raise LocalDeployError(f"cdktf {verb} failed ({code}); log: {log_path}\n{tail}")
        return StepResult(verb, time.monotonic() - started, output)

    def deploy(self) -> tuple[StepResult, dict[str, Any]]:
        """``cdktf deploy --auto-approve``; the step and the stack's outputs."""
        outputs_file = self.workdir / "outputs.json"
        step = self.cdktf("deploy", "--auto-approve", "--outputs-file", str(outputs_file))
        outputs = json.loads(outputs_file.read_text()).get(self.stack, {}) if outputs_file.exists() else {}
        return step, outputs

    def diff(self) -> tuple[StepResult, Drift]:
        """``cdktf diff``; the step and the saved plan's drift (see :func:`plan_drift`)."""
        step = self.cdktf("diff")
        shown = terraform_offline.run_terraform(["show", "-json", "plan"], self.stack_dir, self.env)
        if shown.returncode != 0:
            raise LocalDeployError(f"terraform show of cdktf's saved plan failed:\n{shown.stderr[-2000:]}")
        drift = plan_drift(json.loads(shown.stdout))
        # cdktf's own summary and the saved plan must agree (the plan is the one cdktf showed).
        summary = _PLAN_SUMMARY.search(step.output)
        updates = sum(1 for attributes in drift.values() if not any(a.startswith("<") for a in attributes))
        if (summary is None) != (not drift) or (summary and int(summary.group(2)) != updates):
            said = summary.group(0) if summary else "no changes"
            raise LocalDeployError(f"cdktf diff says {said!r}, its saved plan has {drift}")
        return step, drift

    def destroy(self) -> StepResult:
        """``cdktf destroy --auto-approve``."""
        return self.cdktf("destroy", "--auto-approve")

    def resource_count(self) -> int:
        """Managed resources in the stack's state."""
        return state_resource_count(self.state_path)

    def close(self) -> None:
        """Stop moto by its PID and remove the workdir (both even if the other fails)."""
        stop_moto_and_remove(self.server, self.workdir, self.say)


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # SIGTERM unwinds like Ctrl-C: moto is stopped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=DEMO_CONFIG, help="one-account config (default: demo)")
    parser.add_argument(
        "--diff", action="store_true", help="cdktf diff after the deploy; unknown drift fails"
    )
    parser.add_argument("--destroy", action="store_true", help="cdktf destroy before stopping moto")
    parser.add_argument("--quiet", action="store_true", help="do not stream cdktf's output")
    args = parser.parse_args(argv)

    def say(text: str) -> None:
        print(text, flush=True)

    previous = signal.signal(signal.SIGTERM, _interrupt)
    failed = False
    try:
        with LocalCdktf(args.config.resolve(), say, stream=not args.quiet) as local:
            step, outputs = local.deploy()
            count = local.resource_count()
            say(f"\n== {local.stack}: outputs ==")
            for name, value in sorted(outputs.items()):
                say(f"  {name} = {value}")
            say(f"\ndeployed {local.stack}: {count} resources in {step.seconds:.1f} s (cdktf deploy)")
            if args.diff:
                step, drift = local.diff()
                unexpected = unexpected_drift(drift)
                say(f"\ncdktf diff ({step.seconds:.1f} s): {len(drift)} resource(s) would change")
                for address, changes in sorted(drift.items()):
                    for name in changes:
                        label = "UNEXPECTED" if name in unexpected.get(address, ()) else "known moto gap"
                        say(f"  {address}: {name} ({label})")
                failed = bool(unexpected)
            if args.destroy:
                step = local.destroy()
                left = local.resource_count()
                say(f"destroyed {local.stack} in {step.seconds:.1f} s; {left} resources left in the state")
    except KeyboardInterrupt:
        print("\ninterrupted: moto stopped and the temporary files removed", file=sys.stderr)
        return 130
    except cdktf_cli.CdktfCliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except LocalDeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
