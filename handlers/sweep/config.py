"""Settings of the sweep Lambda: the response Lambda's settings plus how to sweep.

The sweep reads the same variables as the response function (``REMEDIATION_MODE``,
``EXCEPTION_BUCKETS``, ``APPROVAL_TAG``, ...; see :mod:`handlers.response.response_config`) and
these (:class:`handlers.response.function_env.SweepEnv`), all optional except where fan-out needs the queue:

- ``SWEEP_WORK_QUEUE_URL``: the SQS work queue for fan-out; empty: never fan out.
- ``SWEEP_FANOUT_THRESHOLD``: above this many buckets the scheduled run only enqueues.
- ``SWEEP_THREADS``: bucket checks in flight per invocation.
- ``SWEEP_BATCH_SIZE``: buckets per work-queue message.
- ``SWEEP_DIGEST_HOUR``: UTC hour from which the day's digest goes out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from handlers.response.function_env import SweepEnv as Env
from handlers.response.response_config import QUEUE_URL, ConfigError, Settings, load_settings

DEFAULT_FANOUT_THRESHOLD = 3000
DEFAULT_THREADS = 16
DEFAULT_BATCH_SIZE = 500
DEFAULT_DIGEST_HOUR = 8


@dataclass(frozen=True)
class SweepSettings:
    """The response settings (``base``) and the sweep's own."""

    base: Settings
    work_queue_url: str | None
    fanout_threshold: int
    threads: int
    batch_size: int
    digest_hour: int


def load_sweep_settings(environ: Mapping[str, str]) -> SweepSettings:
    """Read and validate; :class:`ConfigError` names the first bad variable."""
    base = load_settings(environ)
    queue = environ.get(Env.WORK_QUEUE_URL, "").strip() or None
    if queue is not None and not QUEUE_URL.match(queue):
        raise ConfigError(f"{Env.WORK_QUEUE_URL}: expected an SQS queue URL, got {queue!r}")
    return SweepSettings(
        base=base,
        work_queue_url=queue,
        fanout_threshold=_integer(environ, Env.FANOUT_THRESHOLD, DEFAULT_FANOUT_THRESHOLD, 1, 10_000_000),
        threads=_integer(environ, Env.THREADS, DEFAULT_THREADS, 1, 128),
        # 256 KiB per SQS message; a bucket reference is at most ~90 bytes of JSON.
        batch_size=_integer(environ, Env.BATCH_SIZE, DEFAULT_BATCH_SIZE, 1, 2000),
        digest_hour=_integer(environ, Env.DIGEST_HOUR, DEFAULT_DIGEST_HOUR, 0, 23),
    )


def _integer(environ: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected an integer from {low} to {high}, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}: expected an integer from {low} to {high}, got {value}")
    return value
