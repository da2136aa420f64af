"""The one place that hands out boto3 clients (the seam tests swap or observe).

Every AWS call of the response Lambda goes through a client from :func:`client`, so
tests can point it at moto, inject faults, or record each operation to check it
against the IAM list in :mod:`handlers.response.permissions`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Literal

import boto3
from botocore.config import Config

DEFAULT_POOL_CONNECTIONS = 16

# Bounded timeouts: the Lambda must reach the alert before its own timeout, even when
# S3 hangs. Standard retry mode retries throttling and transient errors with backoff;
# three attempts bound one call to about 3 x (2 s connect + 5 s read) plus backoff.
CLIENT_CONFIG = Config(
    connect_timeout=2,
    read_timeout=5,
    retries={"total_max_attempts": 3, "mode": "standard"},  # first try + two retries
    max_pool_connections=DEFAULT_POOL_CONNECTIONS,
)

# For calls under a time budget (the actor history): one attempt, short timeouts, so a slow or
# throttled service ends the answer early instead of holding up the alert.
BUDGET_CONFIG = Config(
    connect_timeout=1, read_timeout=2, retries={"total_max_attempts": 1, "mode": "standard"}
)

ClientHook = Callable[[Any], None]
# The services the functions call: boto3-stubs types a client by its service's literal name.
ServiceName = Literal["cloudtrail", "dynamodb", "events", "s3", "s3control", "securityhub", "sns", "sqs"]

_lock = threading.Lock()
_session: boto3.session.Session | None = None  # one session: its loader caches the service models
_clients: dict[tuple[str, str | None, bool], Any] = {}
_hooks: list[ClientHook] = []
_pool_connections = DEFAULT_POOL_CONNECTIONS  # CLIENT_CONFIG's pool size (botocore-stubs does not declare it)


def client(service: ServiceName, region: str | None = None, *, budgeted: bool = False) -> Any:
    """A cached boto3 client for ``service`` in ``region`` (``None``: the default region).

    ``budgeted``: a client with :data:`BUDGET_CONFIG` (no retries, short timeouts).
    """
    key = (service, region, budgeted)
    cached = _clients.get(key)
    if cached is not None:
        return cached
    # Creation is not thread-safe in boto3 (shared session state); calls on a client are.
    global _session
    with _lock:
        cached = _clients.get(key)
        if cached is None:
            if _session is None:
                _session = boto3.session.Session()
            config = CLIENT_CONFIG.merge(BUDGET_CONFIG) if budgeted else CLIENT_CONFIG
            cached = _session.client(service, region_name=region, config=config)
            for hook in _hooks:
                hook(cached)
            _clients[key] = cached
    return cached


def queue_region(url: str) -> str | None:
    """The region of an SQS queue URL (``https://sqs.<region>.amazonaws.com/...``); else None (default)."""
    host = url.split("/")[2] if url.count("/") >= 3 else ""
    parts = host.split(".")
    return parts[1] if len(parts) > 2 and parts[0] == "sqs" else None


def size_connection_pool(connections: int) -> None:
    """Give clients created from now on ``connections`` pooled HTTP connections.

    The sweep reads many buckets on many threads; a pool smaller than the thread count makes
    threads queue for a connection (urllib3 warns "connection pool is full"). Cached clients
    with another pool size are dropped; hooks stay.
    """
    global CLIENT_CONFIG, _pool_connections
    wanted = max(connections, DEFAULT_POOL_CONNECTIONS)
    with _lock:
        if _pool_connections == wanted:
            return
        CLIENT_CONFIG = CLIENT_CONFIG.merge(Config(max_pool_connections=wanted))
        _pool_connections = wanted
        _clients.clear()


def add_client_hook(hook: ClientHook) -> None:
    """Call ``hook(client)`` on every client created from now on (tests: observers, fault injection)."""
    with _lock:
        _hooks.append(hook)


def remove_client_hook(hook: ClientHook) -> None:
    """Stop calling ``hook`` on new clients (clients it already saw keep what it did)."""
    with _lock:
        if hook in _hooks:
            _hooks.remove(hook)


def reset_clients(*, keep_hooks: bool = False) -> None:
    """Forget cached clients and (unless ``keep_hooks``) hooks; the session and its model cache stay."""
    with _lock:
        _clients.clear()
        if not keep_hooks:
            _hooks.clear()
