"""One deployment of the stack to a fresh emulator, from start to clean-up, with phase timings.

:class:`EmulatedStack` is a context manager: entering starts moto, synthesizes the demo
config with the emulator endpoint, runs ``terraform init`` and ``apply`` and reads the
stack back; leaving destroys the stack, stops moto by its PID and removes the temporary
directory, whatever happened in between (an error, Ctrl-C, SIGTERM). The demo command
and the end-to-end test share it, so the test deploys exactly what the demo deploys.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from demo import terraform_run
from demo.closing_session import ClosingSession, stop_moto_and_remove
from demo.emulator import MotoServer
from demo.replay import Deployment, read_deployment
from stacks.config import AccountConfig, load_config

DEMO_CONFIG = Path(__file__).resolve().parent / "detector.demo.toml"
Say = Callable[[str], None]


class EmulatedStack(ClosingSession):
    """The demo stack deployed to a local moto server (see module docstring)."""

    def __init__(self, config_path: Path = DEMO_CONFIG, say: Say = print) -> None:
        config = load_config(config_path)
        if len(config.accounts) != 1:
            raise ValueError(
                f"{config_path}: the demo deploys exactly one account, found {len(config.accounts)}"
            )
        self.config_path = config_path
        self.account: AccountConfig = config.accounts[0]
        self.say = say
        self.workdir = Path(tempfile.mkdtemp(prefix="s3-detector-demo-"))
        self.server = MotoServer(self.account.account_id, self.workdir / "moto.log")
        self.stack_dir: Path | None = None
        self.tf_env: dict[str, str] | None = None
        self.deployment: Deployment | None = None
        self.timings: dict[str, float] = {}
        self._applying = False

    def _phase(self, name: str, started: float) -> None:
        self.timings[name] = self.timings.get(name, 0.0) + time.monotonic() - started

    def open(self) -> Deployment:
        """Entering the session deploys the stack."""
        return self.deploy()

    def deploy(self) -> Deployment:
        """Start moto, synth, init, apply, read back."""
        started = time.monotonic()
        self.server.launch()
        self.say(f"moto: starting on {self.server.url} (pid {self.server.pid}); synthesizing meanwhile")
        self.tf_env = terraform_run.terraform_env(self.workdir / "terraform-cli")
        stacks_dir = terraform_run.synth(self.config_path, self.server.url, self.workdir / "cdktf.out")
        self.stack_dir = stacks_dir / self.account.name
        self._phase("synth", started)
        started = time.monotonic()
        self.server.wait_ready()
        self._phase("moto start (after synth)", started)
        started = time.monotonic()
        terraform_run.init(self.stack_dir, self.tf_env, self.workdir / "init.log")
        self._phase("terraform init", started)
        self.say(
            f"terraform: init done; applying {self.account.name} (SQS queues and their policies wait ~25 s)"
        )
        started = time.monotonic()
        self._applying = True
        terraform_run.apply(self.stack_dir, self.tf_env, self.workdir / "apply.log", self.say)
        self._phase("terraform apply", started)
        started = time.monotonic()
        outputs = terraform_run.outputs(self.stack_dir, self.tf_env)
        self.deployment = read_deployment(
            self.server,
            self.account.account_id,
            self.account.name,
            self.account.regions,
            self.stack_dir,
            str(outputs["alert_topic_arn"]),
            self.workdir,
        )
        self._phase("read back", started)
        rules = ", ".join(sorted({f"{r.route}@{r.region}" for r in self.deployment.rules}))
        function = self.deployment.function.name
        self.say(f"deployed: rules {rules}; function {function}; topic {self.deployment.topic_arn}")
        return self.deployment

    def close(self) -> None:
        """Destroy the stack, stop moto by PID, remove the temporary directory (each even if one fails)."""
        try:
            if self._applying and self.stack_dir is not None and self.tf_env is not None and self.server.pid:
                started = time.monotonic()
                self.say("terraform: destroying the stack")
                try:
                    terraform_run.destroy(self.stack_dir, self.tf_env, self.workdir / "destroy.log", self.say)
                except terraform_run.TerraformError as exc:
                    self.say(f"terraform destroy failed (the emulator is discarded anyway): {exc}")
                self._phase("terraform destroy", started)
                self._applying = False
        finally:
            stop_moto_and_remove(self.server, self.workdir, self.say)
