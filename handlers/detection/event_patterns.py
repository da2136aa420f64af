"""The EventBridge rules that route CloudTrail records to the response function, derived from the rules.

One pattern per route (see ``handlers.detection.finding.Route``), assembled from the pattern pieces the
rule modules declare (:func:`handlers.detection.rules.patterns_of`). The stack deploys exactly these
patterns and the routing tests run the labelled dataset through them, so "which calls reach
the function" is decided by the rule modules and nowhere else.

Design choices:
- Routing is a cheap, fail-open pre-filter; the classifier decides. A pattern may let a
  harmless call through (a Deny-only ``Principal: "*"`` policy), but it must never drop
  one the classifier would flag. Where the record may be damaged (null or truncated
  ``requestParameters``, a policy recorded as a JSON string) the call is routed.
- Failed calls (``errorCode`` present) are routed too: attempts are reported.
- Arrays of objects (``Statement[]``, ``Grant[]``) are flattened by EventBridge and
  fields of one element are not correlated with each other, so every condition that
  reaches into an array tests one field only.
- Values differ between event versions (``"x-amz-acl": ["public-read"]`` in 1.05,
  a string later); EventBridge matches either, since a list matches if any item does.
- Every pattern stays under EventBridge's default 2,048-character limit (tested); a piece
  with a ``fallback`` is loosened to it when the exact pattern would not fit.
- Assembly: pieces identical across rules are merged (their event sources joined); pieces
  that only name calls are merged into one ``eventName`` list. When every piece of a route
  has the same event sources they are written once at the top, else on each alternative.
- Two patterns depend on the deployment (:func:`rules_for`). Trail tamper: besides any
  trail being stopped, deleted or narrowed (static), it matches calls on the detector's
  own trail bucket and keys. Guard removal: it matches a PutBucketTagging naming the
  configured approval tag.

No AWS or cdktf import: the stack, the tests and the Lambda-side replay all read this.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, get_args

from handlers.detection.finding import Route
from handlers.detection.rules import EVENT_SOURCES, RULE_MODULES, patterns_of
from handlers.detection.rules.detector_context import DEFAULT_APPROVAL_TAG, NO_CONTEXT, DetectorContext
from handlers.detection.timestamps import utc_text

DETAIL_TYPE = "AWS API Call via CloudTrail"
MAX_PATTERN_CHARS = 2048  # EventBridge's default limit on an event pattern
ROUTES: tuple[Route, ...] = get_args(Route)


def pattern_json(pattern: dict[str, Any]) -> str:
    """Compact JSON, as EventBridge stores it (the length EventBridge's limit applies to)."""
    return json.dumps(pattern, separators=(",", ":"))


def eventbridge_source(event_source: str) -> str:
    """EventBridge ``source`` of a CloudTrail eventSource.

    ``s3-outposts.amazonaws.com`` becomes ``aws.s3-outposts``.
    """
    return "aws." + event_source.split(".", 1)[0]


# CloudTrail eventSource -> EventBridge "source" of the event it becomes, for every source a rule reads.
EVENTBRIDGE_SOURCES: dict[str, str] = {source: eventbridge_source(source) for source in EVENT_SOURCES}


def _key(detail: Any) -> str:
    return json.dumps(detail, sort_keys=True)


def _alternatives(
    route: Route, context: DetectorContext, key_ids: Sequence[str] | None, loose: bool
) -> list[tuple[list[str], dict[str, Any]]]:
    """(event sources, detail) per distinct alternative of ``route``, in registry order."""
    merged: dict[str, tuple[list[str], dict[str, Any]]] = {}
    for module in RULE_MODULES:
        for part in patterns_of(module, context, key_ids):
            if part.route != route:
                continue
            detail = dict(part.fallback if loose and part.fallback is not None else part.detail)
            sources, _ = merged.setdefault(_key(detail), ([], detail))
            if module.EVENT_SOURCE not in sources:
                sources.append(module.EVENT_SOURCE)
    # Pieces that only name calls become one eventName list per set of sources (shorter, same match).
    alternatives: list[tuple[list[str], dict[str, Any]]] = []
    names_at: dict[tuple[str, ...], int] = {}
    for sources, detail in merged.values():
        if set(detail) != {"eventName"}:
            alternatives.append((sources, detail))
            continue
        at = names_at.setdefault(tuple(sources), len(alternatives))
        if at == len(alternatives):
            alternatives.append((sources, {"eventName": []}))
        names = alternatives[at][1]["eventName"]
        names.extend(name for name in detail["eventName"] if name not in names)
    return alternatives


def route_pattern(
    route: Route, context: DetectorContext = NO_CONTEXT, key_ids: Sequence[str] | None = None
) -> dict[str, Any]:
    """The deployed pattern of ``route`` for ``context`` (``key_ids``: see :func:`rules_for`)."""
    pattern = _assemble(_alternatives(route, context, key_ids, loose=False))
    if len(pattern_json(pattern)) > MAX_PATTERN_CHARS:
        pattern = _assemble(_alternatives(route, context, key_ids, loose=True))
    return pattern


def _assemble(alternatives: list[tuple[list[str], dict[str, Any]]]) -> dict[str, Any]:
    if not alternatives:
        raise ValueError("a route without pattern pieces: no rule module declares one for it")
    sources = list(dict.fromkeys(s for group, _ in alternatives for s in group))
    shared = all(group == alternatives[0][0] for group, _ in alternatives)
    if shared:
        details = [detail for _, detail in alternatives]
        body = details[0] if len(details) == 1 else {"$or": details}
        detail = {"eventSource": alternatives[0][0], **body}
    else:
        detail = {"$or": [{"eventSource": group, **d} for group, d in alternatives]}
    return {
        "source": [eventbridge_source(s) for s in sources],
        "detail-type": [DETAIL_TYPE],
        "detail": detail,
    }


# Console / XML-body variant: ACL bodies granting to the public groups, and policy documents.
PUBLIC_BODY: dict[str, Any] = route_pattern("public-body")
# CLI / header variant: canned x-amz-acl values and x-amz-grant-* headers naming the public groups,
# on any call that takes them.
PUBLIC_HEADER: dict[str, Any] = route_pattern("public-header")
# Trail tamper, static: any trail stopped, deleted or narrowed.
TRAIL_TAMPER: dict[str, Any] = route_pattern("trail-tamper")


def guard_removal_pattern(approval_tag: str = DEFAULT_APPROVAL_TAG) -> dict[str, Any]:
    """Block Public Access switched off or deleted (bucket or account), ownership controls that
    re-enable ACLs, and the approval tag ``approval_tag`` set or every bucket tag deleted.

    An all-true BPA put (our own remediation emits one) is not routed, nor is a tagging call that
    does not name the approval tag (the everyday kind). Should a key make the pattern exceed the
    size limit, every PutBucketTagging is routed instead (fail open: the classifier decides).
    """
    return route_pattern("guard-removal", DetectorContext(approval_tag=approval_tag))


def trail_tamper_pattern(context: DetectorContext, key_ids: Sequence[str] | None = None) -> dict[str, Any]:
    """The trail-tamper pattern for one deployment: :data:`TRAIL_TAMPER` plus the detector's resources.

    Adds the calls ``handlers.detection.rules.trail_bucket`` reads on the context's trail bucket and
    those ``handlers.detection.rules.trail_key`` reads on its keys. ``key_ids`` overrides the ids taken
    from the ARNs (the stack passes Terraform expressions when the ARN is not known at synth).
    Without bucket or keys the pattern is :data:`TRAIL_TAMPER` itself.
    """
    pattern = route_pattern("trail-tamper", context, key_ids)
    return TRAIL_TAMPER if pattern == TRAIL_TAMPER else pattern


@dataclass(frozen=True)
class RuleSpec:
    """One EventBridge rule: its route (also its name suffix), what it is for, and its pattern."""

    route: Route
    description: str
    pattern: dict[str, Any]

    def pattern_json(self) -> str:
        """The pattern as deployed: compact JSON, keys in declaration order."""
        return pattern_json(self.pattern)


# The guard-removal pattern for the default approval tag (rules_for swaps in a configured one).
GUARD_REMOVAL: dict[str, Any] = guard_removal_pattern()
GUARD_REMOVAL_DESCRIPTION = (
    "Block Public Access off or deleted, ACL-enabling ownership controls; "
    "approval tag set or bucket tags deleted"
)
# What each route's rule is for (its pattern comes from the rule modules).
DESCRIPTIONS: dict[Route, str] = {
    "public-body": (
        "S3 ACL bodies and log target grants to the public groups; bucket and access point policies"
    ),
    "public-header": "S3 canned x-amz-acl and x-amz-grant-* headers naming the public groups",
    "guard-removal": GUARD_REMOVAL_DESCRIPTION,
    "trail-tamper": "CloudTrail stopped, deleted or narrowed",
}
_STATIC: dict[Route, dict[str, Any]] = {
    "public-body": PUBLIC_BODY,
    "public-header": PUBLIC_HEADER,
    "guard-removal": GUARD_REMOVAL,
    "trail-tamper": TRAIL_TAMPER,
}

RULES: tuple[RuleSpec, ...] = tuple(RuleSpec(route, DESCRIPTIONS[route], _STATIC[route]) for route in ROUTES)
RULES_BY_ROUTE: dict[str, RuleSpec] = {rule.route: rule for rule in RULES}


def rules_for(context: DetectorContext, key_ids: Sequence[str] | None = None) -> tuple[RuleSpec, ...]:
    """The rules one deployment gets: :data:`RULES` with the trail-tamper pattern for ``context``
    and the guard-removal pattern for its approval tag (both as in :data:`RULES` by default)."""
    tamper = trail_tamper_pattern(context, key_ids)
    guard = (
        GUARD_REMOVAL
        if context.approval_tag == DEFAULT_APPROVAL_TAG
        else guard_removal_pattern(context.approval_tag)
    )

    def for_context(rule: RuleSpec) -> RuleSpec:
        if rule.route == "trail-tamper" and tamper is not TRAIL_TAMPER:
            return replace(
                rule,
                pattern=tamper,
                description="CloudTrail stopped, deleted or narrowed; "
                "the detector's trail bucket or key altered",
            )
        if rule.route == "guard-removal" and guard is not GUARD_REMOVAL:
            return replace(rule, pattern=guard)
        return rule

    return tuple(for_context(rule) for rule in RULES)


def envelope(record: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
    """The EventBridge event that CloudTrail ``record`` becomes on the default bus."""
    event_source = str(record.get("eventSource") or "")
    source = EVENTBRIDGE_SOURCES.get(event_source, eventbridge_source(event_source))
    return {
        "version": "0",
        "id": event_id or str(record.get("eventID") or "00000000-0000-0000-0000-000000000000"),
        "detail-type": DETAIL_TYPE,
        "source": source,
        "account": str(record.get("recipientAccountId") or "000000000000"),
        "time": str(record.get("eventTime") or utc_text(datetime.now(UTC))),
        "region": str(record.get("awsRegion") or "us-east-1"),
        "resources": [],
        "detail": record,
    }
