"""The rule registry: one module per exposure path, each declaring the events it reads.

Adding a path means adding a module here with ``EVENT_SOURCE``, ``EVENT_NAMES`` and
``classify(record, context)`` plus its labelled events under ``dataset/``; nothing else
changes. Several modules may read the same event: a public policy put on the detector's
own trail bucket is both an exposure (``bucket_policy``) and tampering (``trail_bucket``),
and both findings must come out.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from types import ModuleType

from handlers.finding import Finding
from handlers.records import Record
from handlers.rules import (
    access_point_policy,
    acl_grants,
    approval_tag,
    bucket_logging,
    bucket_policy,
    ownership_controls,
    public_access_block,
    trail_bucket,
    trail_key,
    trail_tamper,
)
from handlers.rules.detector_context import NO_CONTEXT, DetectorContext

RULE_MODULES: tuple[ModuleType, ...] = (
    bucket_policy,
    acl_grants,
    bucket_logging,
    public_access_block,
    ownership_controls,
    access_point_policy,
    trail_tamper,
    trail_bucket,
    trail_key,
    approval_tag,
)

Classifier = Callable[[Record, DetectorContext], list[Finding]]
EventKey = tuple[str, str]  # (eventSource, eventName)


def _rules_by_event(modules: tuple[ModuleType, ...]) -> dict[EventKey, tuple[ModuleType, ...]]:
    table: dict[EventKey, tuple[ModuleType, ...]] = {}
    for module in modules:
        for name in module.EVENT_NAMES:
            key = (module.EVENT_SOURCE, name)
            table[key] = (*table.get(key, ()), module)
    return table


# (eventSource, eventName) -> every rule module that reads the event, in RULE_MODULES order.
RULES_BY_EVENT: dict[EventKey, tuple[ModuleType, ...]] = _rules_by_event(RULE_MODULES)


def _all_of(modules: tuple[ModuleType, ...]) -> Callable[..., list[Finding]]:
    def classify_event(record: Record, context: DetectorContext = NO_CONTEXT) -> list[Finding]:
        return [finding for module in modules for finding in module.classify(record, context)]

    classify_event.__doc__ = "Findings of " + ", ".join(m.__name__.rsplit(".", 1)[-1] for m in modules)
    return classify_event


# (eventSource, eventName) -> one callable running every rule for the event (no error handling:
# handlers.classify catches per rule, so one rule's bug cannot hide another rule's finding).
REGISTRY: dict[EventKey, Callable[..., list[Finding]]] = {
    key: _all_of(modules) for key, modules in RULES_BY_EVENT.items()
}

WATCHED_EVENT_NAMES: frozenset[str] = frozenset(name for _, name in REGISTRY)


def _can_fire(module: ModuleType, context: DetectorContext) -> bool:
    fields = getattr(module, "CONTEXT_FIELDS", ())
    return not fields or any(getattr(context, field) for field in fields)


@cache
def watched_event_names(context: DetectorContext = NO_CONTEXT) -> frozenset[str]:
    """The event names some rule can act on given ``context``.

    A rule that needs detector context it was not given (the trail bucket, the trail's key)
    stays silent, so its calls need not even be parsed offline.
    """
    return frozenset(
        name for (_, name), modules in RULES_BY_EVENT.items() if any(_can_fire(m, context) for m in modules)
    )


@cache
def event_markers(context: DetectorContext = NO_CONTEXT) -> dict[str, tuple[str, ...]]:
    """Event names that matter only in a record holding all of some literal texts, with those texts.

    A rule may declare ``prefilter_markers(context)`` (e.g. ``approval_tag``: a PutBucketTagging
    matters only when it names the approval key). A name qualifies when the one rule that can act
    on it declares markers for it; ``detect``'s prefilter then skips files that lack them. Do not
    mutate the result (it is cached).
    """
    readers: dict[str, list[ModuleType]] = {}
    for (_, name), modules in RULES_BY_EVENT.items():
        readers.setdefault(name, []).extend(m for m in modules if _can_fire(m, context))
    markers: dict[str, tuple[str, ...]] = {}
    for name, readers_of_name in readers.items():
        declared = (
            getattr(readers_of_name[0], "prefilter_markers", None) if len(readers_of_name) == 1 else None
        )
        texts = declared(context).get(name) if declared else None
        if texts:
            markers[name] = tuple(texts)
    return markers
