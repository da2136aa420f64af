"""Run the deployed function's code the way Lambda would, because moto cannot (no Docker).

The package comes from the synthesized stack's assets and is used only if its SHA-256 is
the ``CodeSha256`` the emulator reports for the deployed function. It runs in a child
process (:mod:`demo.lambda_worker`, one "warm container" per pass) whose environment is
exactly what Lambda would give it: the function's variables as read back from
``GetFunctionConfiguration``, the runtime's own variables (region, function name,
handler) and the role's temporary credentials. Two variables point boto3 at the emulator
(``AWS_ENDPOINT_URL``, ``AWS_DISABLE_HOST_PREFIX_INJECTION``); nothing else of the
harness's environment leaks in.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from demo.deployed import DeployedFunction

WORKER = Path(__file__).resolve().parent / "lambda_worker.py"


class RuntimeSetupError(RuntimeError):
    """The deployed package cannot be found or the container does not answer."""


@dataclass
class Invocation:
    """One invocation's reply: the handler's return value or error, its AWS calls and logs."""

    result: Any
    error: dict[str, str] | None
    started: float
    finished: float
    calls: list[dict[str, Any]] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)

    @property
    def denied(self) -> list[str]:
        """``service:Operation`` of every call the emulator refused for lack of permission."""
        refused = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError"}
        return [
            f"{c['service']}:{c['operation']}"
            for c in self.calls
            if c.get("error") in refused or (c.get("status") == 403 and c.get("error") is None)
        ]


def code_sha256(path: Path) -> str:
    """Lambda's ``CodeSha256``: the base64 of the package's SHA-256."""
    return base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode()


def deployed_package(stack_dir: Path, function: DeployedFunction) -> Path:
    """The asset zip whose hash is the deployed function's ``CodeSha256``."""
    candidates = sorted((stack_dir / "assets").rglob("*.zip"))
    for candidate in candidates:
        if code_sha256(candidate) == function.code_sha256:
            return candidate
    raise RuntimeSetupError(
        f"no asset under {stack_dir / 'assets'} has the deployed CodeSha256 {function.code_sha256} "
        f"(found {len(candidates)} zip(s)): the emulator runs different code than this synth"
    )


def extract(package: Path, into: Path) -> Path:
    """Unpack the deployment package into ``into``; return it."""
    into.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(package) as archive:
        archive.extractall(into)
    return into


def runtime_environment(
    function: DeployedFunction,
    credentials: dict[str, str],
    endpoint_url: str,
    variables: dict[str, str] | None = None,
) -> dict[str, str]:
    """The container's environment: ``variables`` (default: the function's) plus Lambda's own."""
    env = dict(function.environment if variables is None else variables)
    env.update(
        AWS_REGION=function.region,
        AWS_DEFAULT_REGION=function.region,
        AWS_LAMBDA_FUNCTION_NAME=function.name,
        AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
        AWS_LAMBDA_FUNCTION_TIMEOUT=str(function.timeout_seconds),
        AWS_EXECUTION_ENV="AWS_Lambda_python_emulated",
        DEMO_FUNCTION_ARN=function.arn,
        _HANDLER=function.handler,
        AWS_ACCESS_KEY_ID=credentials["AccessKeyId"],
        AWS_SECRET_ACCESS_KEY=credentials["SecretAccessKey"],
        AWS_SESSION_TOKEN=credentials["SessionToken"],
        # The emulator plumbing: every client to the local endpoint, no account-id host prefix,
        # no shared config or credentials files, no instance metadata.
        AWS_ENDPOINT_URL=endpoint_url,
        AWS_DISABLE_HOST_PREFIX_INJECTION="true",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        PATH=os.environ.get("PATH", "/usr/bin:/bin"),
        LANG="C.UTF-8",
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONUNBUFFERED="1",
    )
    return env


class Container:
    """A warm container: the worker process, fed one event at a time."""

    def __init__(
        self,
        package_dir: Path,
        env: dict[str, str],
        timeout_seconds: int,
        log_path: Path,
        history_file: Path | None = None,
    ) -> None:
        """``history_file``: CloudTrail records the container's fake LookupEvents answers from."""
        self.timeout_ms = timeout_seconds * 1000
        self._log = log_path.open("a")
        extra = [str(history_file)] if history_file else []
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), str(package_dir), *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            text=True,
            cwd=package_dir,  # Lambda's working directory is the package root
            start_new_session=True,
        )

    def invoke(self, event: dict[str, Any]) -> Invocation:
        """Run the handler on ``event`` and wait for its reply."""
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            self.process.stdin.write(json.dumps({"event": event, "remaining_ms": self.timeout_ms}) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        except BrokenPipeError:
            line = ""
        if not line:
            raise RuntimeSetupError(
                f"the emulated container exited ({self.process.poll()}); see {self._log.name}"
            )
        reply = json.loads(line)
        return Invocation(
            result=reply.get("result"),
            error=reply.get("error"),
            started=reply["started"],
            finished=reply["finished"],
            calls=reply.get("calls", []),
            logs=reply.get("logs", []),
        )

    def stop(self) -> None:
        """End the worker by its PID."""
        if self.process.poll() is None:
            if self.process.stdin:
                self.process.stdin.close()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._log.close()

    def __enter__(self) -> Container:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
