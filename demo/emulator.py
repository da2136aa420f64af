"""The local AWS emulator: a moto server on 127.0.0.1, on a free port, stopped by its PID.

moto runs in its own process (``moto.server`` through :mod:`demo.moto_server`) and its own
session, so a Ctrl-C in the terminal does not kill it before the stack is destroyed; :meth:`MotoServer.stop`
ends it by PID. Every request lands in one account (``MOTO_ACCOUNT_ID``), the account the
demo config deploys to, whatever access key the caller signs with.

IAM enforcement is a switch of the whole server (moto's ``/moto-api/reset-auth``): the
harness turns it on only while the response function's code runs, so Terraform and the
harness's own set-up calls are never refused.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from demo.lambda_worker import reach_emulator

HOST = "127.0.0.1"
# The harness's own credentials; moto accepts any key while IAM enforcement is off.
HARNESS_KEY = "demo-harness"
CLIENT_CONFIG = Config(retries={"max_attempts": 2, "mode": "standard"})


class EmulatorError(RuntimeError):
    """The emulator did not start or answer."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


class MotoServer:
    """A moto server subprocess; use as a context manager or call :meth:`start`/:meth:`stop`."""

    def __init__(self, account_id: str, log_path: Path, port: int | None = None) -> None:
        self.account_id = account_id
        self.log_path = log_path
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._session = boto3.session.Session(
            aws_access_key_id=HARNESS_KEY, aws_secret_access_key=HARNESS_KEY
        )
        self._clients: dict[tuple[str, str], Any] = {}

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, timeout: float = 30.0) -> None:
        """Start the server and wait until it answers."""
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Start the server process without waiting for it (synth can run meanwhile)."""
        env = {**os.environ, "MOTO_ACCOUNT_ID": self.account_id}
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            # moto.server with a gap closed (demo/moto_server.py: schedule rules and bus events)
            [
                sys.executable,
                str(Path(__file__).with_name("moto_server.py")),
                "-H",
                HOST,
                "-p",
                str(self.port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # Ctrl-C reaches the harness, which stops the server itself
        )
        log.close()

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until the server answers."""
        assert self.process is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EmulatorError(f"moto exited with {self.process.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/data.json", timeout=1):
                    return
            except (OSError, urllib.error.URLError):
                time.sleep(0.2)
        raise EmulatorError(f"moto did not answer on {self.url} within {timeout:.0f} s")

    def stop(self) -> None:
        """Stop the server by its PID (terminate, then kill)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def __enter__(self) -> MotoServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def client(self, service: str, region: str) -> Any:
        """A harness client (not the function's credentials) for ``service`` in ``region``."""
        key = (service, region)
        if key not in self._clients:
            client = self._session.client(
                service, region_name=region, endpoint_url=self.url, config=CLIENT_CONFIG
            )
            reach_emulator(client)
            self._clients[key] = client
        return self._clients[key]

    def enforce_iam(self, on: bool) -> None:
        """Switch moto's IAM enforcement for every request on (``True``) or off."""
        body = b"0" if on else b"inf"
        # A form content type would make Flask swallow the body moto reads.
        request = urllib.request.Request(
            f"{self.url}/moto-api/reset-auth",
            data=body,
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status != 200:
                raise EmulatorError(f"moto refused to switch IAM enforcement: HTTP {response.status}")


class HarnessClients:
    """The ``session.client(service, region_name=...)`` interface ``demo.replay_state`` expects."""

    def __init__(self, server: MotoServer, default_region: str) -> None:
        self.server = server
        self.default_region = default_region

    def client(self, service: str, region_name: str | None = None) -> Any:
        return self.server.client(service, region_name or self.default_region)
