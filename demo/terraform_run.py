"""Synthesize the stack for the emulator and run Terraform on it, with progress on the terminal.

Synthesis goes through the real entry point (``main.py``) with the demo config; the only
difference from a real deployment is ``DETECTOR_AWS_ENDPOINT``, which points every
provider endpoint at the emulator. ``terraform init`` installs the provider offline from
``TF_PROVIDER_MIRROR`` when it is set (``scripts/terraform_offline.py`` writes the CLI
config). ``apply`` and ``destroy`` stream Terraform's JSON events: one line per finished
resource and a heartbeat while a resource waits (the SQS queue takes about 25 s).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
HEARTBEAT_SECONDS = 5.0

Printer = Callable[[str], None]


class TerraformError(RuntimeError):
    """A synth or Terraform step failed; the message carries the tail of its output."""


def offline_helper() -> ModuleType:
    """``scripts/terraform_offline.py``, loaded by path (``scripts/`` is not a package)."""
    path = REPO_ROOT / "scripts" / "terraform_offline.py"
    spec = importlib.util.spec_from_file_location("terraform_offline", path)
    if spec is None or spec.loader is None:
        raise TerraformError(f"{path}: cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def synth(config_path: Path, endpoint_url: str, outdir: Path) -> Path:
    """Run ``main.py`` for ``config_path`` with the emulator endpoint; return the stacks directory."""
    env = {
        **os.environ,
        "DETECTOR_CONFIG": str(config_path),
        "DETECTOR_AWS_ENDPOINT": endpoint_url,
        "CDKTF_OUTDIR": str(outdir),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    env.pop("DETECTOR_PLAN_DEMO", None)
    done = subprocess.run(
        [sys.executable, "main.py"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise TerraformError(f"synth failed ({done.returncode}):\n{_tail(done.stdout + done.stderr)}")
    return outdir / "stacks"


def terraform_env(workdir: Path) -> dict[str, str]:
    """The environment for Terraform: offline CLI config when a mirror is named, no real credentials."""
    helper = offline_helper()
    try:
        env = helper.terraform_env(workdir=workdir)
    except helper.OfflineSetupError as exc:
        raise TerraformError(str(exc)) from None
    # The provider signs with the literal test keys of stacks/providers.py; never with a real profile.
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.pop(name, None)
    env.update(AWS_EC2_METADATA_DISABLED="true", TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1")
    return env


def terraform_binary() -> str:
    """The terraform executable, or a :class:`TerraformError` saying how to get one."""
    try:
        return str(offline_helper().terraform_binary())
    except RuntimeError as exc:
        raise TerraformError(str(exc)) from None


@dataclass
class Progress:
    """What a running apply or destroy has done so far (fed by Terraform's JSON events)."""

    verb: str
    planned: int | None = None
    done: int = 0
    running: dict[str, float] = field(default_factory=dict)  # address -> start (monotonic)
    errors: list[str] = field(default_factory=list)
    summary: str | None = None

    def feed(self, event: dict[str, Any], say: Printer, started: float) -> None:
        kind = event.get("type")
        hook = event.get("hook") or {}
        address = (hook.get("resource") or {}).get("addr", "?")
        if kind == "change_summary":
            changes = event.get("changes") or {}
            if changes.get("operation") in ("plan", None) or self.planned is None:
                self.planned = sum(int(changes.get(k, 0)) for k in ("add", "change", "remove"))
            if changes.get("operation") == self.verb:
                self.summary = event.get("@message")
        elif kind == "apply_start":
            self.running[address] = time.monotonic()
        elif kind == "apply_complete":
            self.running.pop(address, None)
            self.done += 1
            seconds = hook.get("elapsed_seconds", 0)
            if seconds >= 5:  # only the slow ones; the rest are summed up by the heartbeat
                say(f"  {_clock(started)} {self.verb}: {address} done after {seconds} s")
        elif kind == "apply_errored":
            self.running.pop(address, None)
        elif kind == "diagnostic" and event.get("@level") == "error":
            diagnostic = event.get("diagnostic") or {}
            self.errors.append(f"{diagnostic.get('summary', '')}: {diagnostic.get('detail', '')}".strip())

    def heartbeat(self, started: float) -> str:
        total = f"/{self.planned}" if self.planned is not None else ""
        waiting = ""
        if self.running:
            address, since = min(self.running.items(), key=lambda item: item[1])
            waiting = f"; waiting on {address} ({time.monotonic() - since:.0f} s)"
        return f"  {_clock(started)} {self.verb}: {self.done}{total} resources{waiting}"


def run_streaming(
    args: list[str], stack_dir: Path, env: dict[str, str], verb: str, log_path: Path, say: Printer
) -> Progress:
    """Run ``terraform <args> -json`` in ``stack_dir``, printing progress; raise on failure."""
    started = time.monotonic()
    progress = Progress(verb)
    with log_path.open("a") as log:
        process = subprocess.Popen(
            [terraform_binary(), *args, "-json"],
            cwd=stack_dir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert process.stdout is not None
        lock = threading.Lock()

        def read() -> None:
            for line in process.stdout:  # type: ignore[union-attr]
                log.write(line)
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                with lock:
                    progress.feed(event, say, started)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        last = time.monotonic()
        try:
            while reader.is_alive():
                reader.join(timeout=0.5)
                if time.monotonic() - last >= HEARTBEAT_SECONDS and reader.is_alive():
                    with lock:
                        say(progress.heartbeat(started))
                    last = time.monotonic()
            code = process.wait()
        except BaseException:
            stop_gracefully(process)
            raise
    if code != 0:
        detail = "\n".join(progress.errors) or _tail(log_path.read_text())
        raise TerraformError(f"terraform {verb} failed ({code}); log: {log_path}\n{detail}")
    say(f"  {_clock(started)} {verb}: {progress.summary or 'complete'}")
    return progress


def init(stack_dir: Path, env: dict[str, str], log_path: Path) -> None:
    """``terraform init`` (offline when ``TF_PROVIDER_MIRROR`` is set)."""
    done = subprocess.run(
        [terraform_binary(), "init", "-input=false", "-no-color"],
        cwd=stack_dir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    log_path.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise TerraformError(
            f"terraform init failed ({done.returncode}):\n{_tail(done.stdout + done.stderr)}"
        )


def apply(stack_dir: Path, env: dict[str, str], log_path: Path, say: Printer) -> Progress:
    """``terraform apply`` with streamed progress."""
    return run_streaming(["apply", "-auto-approve", "-input=false"], stack_dir, env, "apply", log_path, say)


def destroy(stack_dir: Path, env: dict[str, str], log_path: Path, say: Printer) -> Progress:
    """``terraform destroy`` (no refresh: the emulator holds exactly what was applied)."""
    return run_streaming(
        ["destroy", "-auto-approve", "-input=false", "-refresh=false"],
        stack_dir,
        env,
        "destroy",
        log_path,
        say,
    )


def outputs(stack_dir: Path, env: dict[str, str]) -> dict[str, Any]:
    """The stack's outputs (``terraform output -json``), as plain values."""
    done = subprocess.run(
        [terraform_binary(), "output", "-json"],
        cwd=stack_dir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise TerraformError(f"terraform output failed:\n{_tail(done.stderr)}")
    return {name: value.get("value") for name, value in json.loads(done.stdout or "{}").items()}


def _clock(started: float) -> str:
    seconds = int(time.monotonic() - started)
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def stop_gracefully(process: subprocess.Popen[Any]) -> None:
    """Ctrl-C or SIGTERM: ask Terraform (or cdktf) to stop gracefully (a terminal's Ctrl-C already
    did) and give it time to save its state, so the destroy that follows knows what exists."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
