"""A context manager that starts a local session on enter and always cleans it up.

The demo's emulated stack and scripts/deploy_local.py both start moto and Terraform state in a
temporary folder: a failure part-way through starting must still stop moto and remove the folder.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

from demo.emulator import MotoServer


class ClosingSession:
    """Calls :meth:`open` on enter and :meth:`close` on exit, and on enter too when ``open`` fails."""

    def open(self) -> object:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def stop_moto_and_remove(server: MotoServer, workdir: Path, say: Callable[[str], None]) -> None:
    """Stop moto by its PID and remove the session's folder (both even if the other fails)."""
    try:
        pid = server.pid
        server.stop()
        if pid:
            say(f"moto: stopped (pid {pid})")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
