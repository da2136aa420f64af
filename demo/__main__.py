"""``python -m demo``: deploy the stack to a local AWS emulator and replay the labelled dataset through it.

Default: start moto on 127.0.0.1, synth ``demo/detector.demo.toml`` with the emulator
endpoint, ``terraform init`` (offline through ``TF_PROVIDER_MIRROR`` when set) and
``apply``, then the main pass over every dataset event in the deployed mode (``enforce``) and a
``dry-run`` pass (``--mode all`` adds ``off``) that changes only the function's
``REMEDIATION_MODE`` and replays the events the main pass had something to close; after the
main pass, forged events (a bare record, another account's envelope, an unwatched region, a
foreign source) invoked directly, each of which must be refused before any read; and
finally destroy the stack, stop moto and remove the temporary files. Exit status 1 when a
verdict differs from its label or anything else in :func:`demo.replay.problems` fails.

``--real-account`` replays the dataset read-only against a stack deployed in a real
account (see :mod:`demo.real_account`).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from handlers.response.permissions import MODES

MODE_CHOICES = ("default", "all", *MODES)


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    # SIGTERM takes the same road as Ctrl-C: unwind through every finally (destroy, stop, clean up).
    raise KeyboardInterrupt(f"signal {signum}")


def _say(text: str) -> None:
    print(text, flush=True)


def pass_order(mode: str, deployed_mode: str) -> list[str]:
    """The passes: the deployed mode first (the main pass), then enforce and dry-run (``all``: and off)."""
    if mode not in ("default", "all"):
        return [mode]
    others = ("enforce", "dry-run", "off") if mode == "all" else ("enforce", "dry-run")
    return [deployed_mode, *(m for m in others if m != deployed_mode)]


def run_emulated(args: argparse.Namespace) -> int:
    from demo import report
    from demo.replay import forged_events, load_cases, problems, run_pass
    from demo.stack_session import EmulatedStack
    from demo.terraform_run import TerraformError

    started = time.monotonic()
    cases = load_cases()
    failures = 0
    try:
        with EmulatedStack(Path(args.config), _say) as stack:
            assert stack.deployment is not None
            deployed_mode = stack.deployment.function.environment.get("REMEDIATION_MODE", "off")
            selected = cases
            for index, mode in enumerate(pass_order(args.mode, deployed_mode)):
                label = (
                    "main pass, as deployed" if index == 0 else "REMEDIATION_MODE changed, same deployment"
                )
                _say(f"\n== pass {index + 1}: {mode} ({label}): replaying {len(selected)} events ==")
                phase = time.monotonic()
                result = run_pass(stack.server, stack.deployment, selected, mode, stack.workdir, _say)
                if index == 0 and not args.full:
                    # Routing, verdicts and alerts do not depend on the mode; what the function does
                    # about a bucket does. Later passes replay the events the main pass had to close.
                    selected = [
                        case
                        for case, row in zip(cases, result.rows, strict=True)
                        if row.remediation in ("applied", "would-apply", "failed", "unverified")
                    ] or selected
                stack.timings[f"replay {mode}"] = time.monotonic() - phase
                _say(report.table(result.rows, only_acted=index > 0 and not args.full))
                _say(report.summary(result))
                failures += len(problems(result))
                if index == 0:
                    _say("\n== forged events: invoked directly, each must be refused before any read ==")
                    phase = time.monotonic()
                    forged = forged_events(stack.server, stack.deployment, stack.workdir, _say)
                    stack.timings["forged events"] = time.monotonic() - phase
                    for problem in forged:
                        _say(f"  PROBLEM: {problem}")
                    failures += len(forged)
        timings = stack.timings
    except KeyboardInterrupt:
        _say("\ninterrupted: the stack was destroyed, moto stopped and the temporary files removed")
        return 130
    except TerraformError as exc:
        _say(f"\nerror: {exc}")
        return 2
    _say("\n== timings ==")
    for phase, seconds in timings.items():
        _say(f"  {phase:<26} {seconds:6.1f} s")
    _say(f"  {'total':<26} {time.monotonic() - started:6.1f} s")
    _say("\nresult: " + ("FAILED: see PROBLEMS above" if failures else "every pass matches the labels"))
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--mode",
        choices=MODE_CHOICES,
        default="default",
        help="passes: default = deployed mode + enforce + dry-run; all = also off; or one mode",
    )
    parser.add_argument("--config", default=None, help="deploy config (default: demo/detector.demo.toml)")
    parser.add_argument("--full", action="store_true", help="replay and print every event in every pass")
    parser.add_argument(
        "--real-account",
        action="store_true",
        help="read-only replay against the stack deployed in the account of your AWS credentials",
    )
    parser.add_argument("--stack", help="with --real-account: the [[accounts]] name (default: the first)")
    args = parser.parse_args(argv)
    if args.real_account:
        from demo import real_account

        return real_account.run(args.config, args.stack, _say)
    from demo.stack_session import DEMO_CONFIG

    args.config = args.config or str(DEMO_CONFIG)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return run_emulated(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
