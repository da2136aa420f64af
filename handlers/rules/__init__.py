"""The rule registry: one module per exposure path, each declaring the events it reads.

Adding a path means adding a module here with ``EVENT_SOURCE``, ``EVENT_NAMES`` and
``classify`` plus its labelled events under ``dataset/``; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from handlers.finding import Finding
from handlers.records import Record
from handlers.rules import (
    access_point_policy,
    acl_grants,
    bucket_logging,
    bucket_policy,
    ownership_controls,
    public_access_block,
    trail_tamper,
)

RULE_MODULES: tuple[ModuleType, ...] = (
    bucket_policy,
    acl_grants,
    bucket_logging,
    public_access_block,
    ownership_controls,
    access_point_policy,
    trail_tamper,
)

Classifier = Callable[[Record], list[Finding]]

# (eventSource, eventName) -> classifier
REGISTRY: dict[tuple[str, str], Classifier] = {
    (module.EVENT_SOURCE, name): module.classify for module in RULE_MODULES for name in module.EVENT_NAMES
}

WATCHED_EVENT_NAMES: frozenset[str] = frozenset(name for _, name in REGISTRY)
