"""The rule registry: one module per exposure path, the single source of truth for what is watched.

A rule module declares (see :mod:`handlers.detection.rules.declarations`):

- its events: ``EVENT_SOURCE`` and ``EVENT_NAMES``, and ``classify(record, context)``;
- its EventBridge pattern pieces and their routes: ``PATTERNS`` (or ``patterns(context, key_ids)``
  when they depend on the deployment);
- the trail selectors it needs: ``DATA_EVENTS`` for the calls CloudTrail records only as data
  events (every other name is a management event);
- the confirmation reads its findings need (``CONFIRMATION``) and, for targets that are not a
  bucket, object, account or trail, their label (``TARGETS``: scope -> words for the alert);
- its replay hint for the demo (``REPLAY``: event name -> how the emulator replays the call).

Everything else is derived from here: the deployed EventBridge patterns and their sources
(:mod:`handlers.detection.event_patterns`), the trail's event selectors (:mod:`stacks.trail`), the demo's
replay (:mod:`demo.replay_state`), the dataset's scopes, and ``detect``'s prefilter
(:mod:`handlers.offline.prefilter`). ``tests/test_registry.py`` fails when a rule's events are not recorded
by the synthesized trail or not routed by a deployed pattern. Adding an exposure path is therefore
one module here (or one more name and pattern piece in an existing one), listed in
:data:`RULE_MODULES`, plus its labelled events under ``dataset/<module>/``. A new *route* (a new
EventBridge rule) is more: ``handlers.detection.finding.Route`` and its description in ``event_patterns``.

Several modules may read the same event: a public policy put on the detector's own trail bucket
is both an exposure (``bucket_policy``) and tampering (``trail_bucket``), and both findings must
come out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from types import ModuleType

from handlers.detection.finding import Finding
from handlers.detection.records import Record
from handlers.detection.rules import (
    access_point_policy,
    acl_grants,
    approval_tag,
    bucket_logging,
    bucket_policy,
    multi_region_access_point_policy,
    object_lambda_access_point_policy,
    outposts,
    ownership_controls,
    public_access_block,
    trail_bucket,
    trail_key,
    trail_tamper,
)
from handlers.detection.rules.declarations import Confirmation, DataEvents, PatternPart, ReplayHint
from handlers.detection.rules.detector_context import NO_CONTEXT, DetectorContext

RULE_MODULES: tuple[ModuleType, ...] = (
    bucket_policy,
    acl_grants,
    bucket_logging,
    public_access_block,
    ownership_controls,
    access_point_policy,
    object_lambda_access_point_policy,
    multi_region_access_point_policy,
    outposts,
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
# handlers.detection.classify catches per rule, so one rule's bug cannot hide another rule's finding).
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


# ---- what the rules declare besides classify (handlers.detection.rules.declarations) ----


def patterns_of(
    module: ModuleType, context: DetectorContext = NO_CONTEXT, key_ids: Sequence[str] | None = None
) -> tuple[PatternPart, ...]:
    """The EventBridge pattern pieces ``module`` needs in a deployment with ``context``."""
    declared = getattr(module, "patterns", None)
    return tuple(declared(context, key_ids)) if declared else tuple(getattr(module, "PATTERNS", ()))


def data_events_of(module: ModuleType) -> tuple[DataEvents, ...]:
    """The calls ``module`` reads that CloudTrail records only as data events."""
    return tuple(getattr(module, "DATA_EVENTS", ()))


def data_event_names(option: str | None = None) -> tuple[str, ...]:
    """Every call some rule reads as a data event that the trail option ``option`` records (any
    option when None)."""
    names = (
        name
        for module in RULE_MODULES
        for events in data_events_of(module)
        if option is None or events.option == option
        for name in events.event_names
    )
    return tuple(dict.fromkeys(names))


def management_events_of(module: ModuleType) -> tuple[str, ...]:
    """The calls ``module`` reads that are management events (recorded by any logging trail)."""
    data = {name for events in data_events_of(module) for name in events.event_names}
    return tuple(name for name in module.EVENT_NAMES if name not in data)


def confirmation_of(module: ModuleType) -> tuple[Confirmation, ...]:
    """What the response function reads to confirm ``module``'s findings."""
    return tuple(module.CONFIRMATION)


# CloudTrail eventSource values some rule reads, in registry order.
EVENT_SOURCES: tuple[str, ...] = tuple(dict.fromkeys(m.EVENT_SOURCE for m in RULE_MODULES))


def _replay_hints(modules: tuple[ModuleType, ...]) -> dict[EventKey, ReplayHint]:
    hints: dict[EventKey, ReplayHint] = {}
    for module in modules:
        for name, hint in getattr(module, "REPLAY", {}).items():
            key = (module.EVENT_SOURCE, name)
            if hints.setdefault(key, hint) != hint:
                raise ValueError(f"{module.__name__}.REPLAY: {name} is replayed as {hints[key]} elsewhere")
    return hints


def blind_spots(watched_regions: Sequence[str]) -> list[str]:
    """The rules whose calls CloudTrail records only in regions a deployment watching
    ``watched_regions`` does not (``RECORDED_IN``): that deployment never sees them."""
    spots = []
    for module in RULE_MODULES:
        recorded_in = getattr(module, "RECORDED_IN", ())
        if recorded_in and not set(recorded_in) & set(watched_regions):
            names, regions = ", ".join(module.EVENT_NAMES), ", ".join(recorded_in)
            spots.append(f"{module.__name__.rsplit('.', 1)[-1]}: {names} recorded only in {regions}")
    return spots


# (eventSource, eventName) -> how the demo replays the call (absent: not replayed).
REPLAY_HINTS: dict[EventKey, ReplayHint] = _replay_hints(RULE_MODULES)

# Finding scope -> what the alert calls the target, for targets other than buckets, objects,
# accounts and trails (their name is in the finding's ``accessPoint``).
TARGET_LABELS: dict[str, str] = {
    scope: label for module in RULE_MODULES for scope, label in getattr(module, "TARGETS", {}).items()
}

# Scopes whose rules declare CONFIRMATION ("alert-only",): targets the response function has no read
# for (Object Lambda and Multi-Region Access Points, Outposts); the event's verdict stands.
ALERT_ONLY_SCOPES: frozenset[str] = frozenset(
    scope
    for module in RULE_MODULES
    if tuple(module.CONFIRMATION) == ("alert-only",)
    for scope in getattr(module, "TARGETS", {})
)
