"""Approvals are auditable: who set or removed a bucket's public-access approval tag, and until when.

A bucket tagged ``<approval tag>=<ISO date>`` may stay public until that date: the response
Lambda and the sweep rate it low and never close it. Whoever can tag a bucket can therefore
exempt it from remediation, so changing the approval is alerted in its own right, at low
severity. The finding's ``actor`` names who did it; its reasons say until when.

Reported (verdict and kind ``approval``, scope ``bucket``, route ``guard-removal``, severity low;
a failed call becomes a low ``attempt`` through :func:`handlers.detection.rules.base.make_finding`):

* ``PutBucketTagging`` whose tag set holds the approval key: sets, extends or shortens the
  approval. The reason gives the expiry the value means, or says the value is unreadable and
  so counts as no approval.
* ``DeleteBucketTagging``: removes every tag, including any approval. Rare, so never noisy.

Deliberately not reported ("don't cry wolf"):

* ``PutBucketTagging`` without the approval key. It replaces the whole tag set, so it does
  remove an approval the bucket had, but it is the everyday tagging call (Terraform re-applies
  every tag on each change) and the record cannot say whether there was an approval at all.
  Losing an approval only matters for a public bucket, and the hourly sweep re-evaluates every
  public bucket: one left without a valid approval alerts there.
* A ``PutBucketTagging`` record whose tag set cannot be read (null or damaged parameters). The
  decision whether a bucket is approved is always read live (``GetBucketTagging``) by the
  response Lambda and the sweep, never taken from this record; a medium ``undetermined`` alert
  for every damaged tagging record would cry wolf.

The approval key is the detector context's (``APPROVAL_TAG``, ``--approval-tag``, a dataset
case's ``approvalTag``) and is compared exactly, as S3 tag keys are case-sensitive.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from handlers.detection.approvals import expiry_text, parse_expiry
from handlers.detection.finding import Finding, Route
from handlers.detection.records import Record, as_list, as_text, failed, get_ci, request_parameters
from handlers.detection.rules.base import make_finding
from handlers.detection.rules.declarations import Confirmation, PatternPart, ReplayHint
from handlers.detection.rules.detector_context import NO_CONTEXT, DetectorContext

EVENT_SOURCE = "s3.amazonaws.com"
EVENT_NAMES = ("PutBucketTagging", "DeleteBucketTagging")
ROUTE: Route = "guard-removal"  # where handlers.detection.classify routes a finding if this rule itself fails
CONFIRMATION: tuple[Confirmation, ...] = ("bucket",)  # the live tags decide, never the record
REPLAY: dict[str, ReplayHint] = {
    "PutBucketTagging": "put-bucket-tagging",
    "DeleteBucketTagging": "delete-bucket-tagging",
}

MAX_VALUE_CHARS = 256  # S3's limit on a tag value; a longer (forged) one is cut in the reason
MAX_REASONS = 5  # S3 refuses duplicate keys, so more than one match is a forged record anyway
_ASCII_LETTERS = re.compile(r"[A-Za-z]+")


def tag_text(value: Any) -> str | None:
    """A tag key or value as text. CloudTrail turns XML text that looks like a literal into JSON:
    a value of ``true`` is recorded as a boolean, ``20261231`` may be a number."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return as_text(value)


def tag_set(record: Record) -> list[tuple[str | None, Any]]:
    """The (key, raw value) pairs of a PutBucketTagging request; ``Tag`` may be one dict or a list."""
    tagging = get_ci(request_parameters(record), "Tagging")
    tags = get_ci(get_ci(tagging, "TagSet"), "Tag")
    return [
        (tag_text(get_ci(tag, "Key")), get_ci(tag, "Value")) for tag in as_list(tags) if isinstance(tag, dict)
    ]


def _shown(text: str) -> str:
    # repr() escapes newlines and control characters visibly; the cap keeps a forged value bounded.
    if len(text) > MAX_VALUE_CHARS:
        return f"{text[:MAX_VALUE_CHARS]!r}... ({len(text)} characters)"
    return repr(text)


def _event_time(record: Record) -> datetime | None:
    text = as_text(record.get("eventTime"))
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment and not moment.tzinfo else moment


def approval_reason(key: str, raw: Any, *, verb: str, when: datetime | None) -> str:
    """What setting ``key`` to ``raw`` means: an approval until an instant, or none at all."""
    value = "" if raw is None else tag_text(raw)  # an empty <Value/> may be recorded as null or omitted
    if value is None:
        return f"{verb} {key} to a value that is not text, which counts as no approval"
    try:
        expiry = parse_expiry(value)
    except Exception:  # parsing is meant never to raise; an audit alert must not depend on it
        expiry = None
    if expiry is None:
        return f"{verb} an unreadable approval value {_shown(value)} ({key}), which counts as no approval"
    reason = f"{verb} public-access approval until {expiry_text(expiry)} ({key}={_shown(value)})"
    try:
        past = when is not None and expiry <= when
    except TypeError:
        past = False
    return reason + (": already past at the time of the call, so it approves nothing" if past else "")


def patterns(context: DetectorContext, key_ids: object = None) -> tuple[PatternPart, ...]:
    """Every DeleteBucketTagging; a PutBucketTagging only when it names the deployment's approval tag
    (a Tag list is flattened: any element's Key matches). Failed calls carry their parameters too,
    so attempts are routed. Should a key be too long for the pattern, every PutBucketTagging is."""
    tagging = {"eventName": ["PutBucketTagging"]}
    return (
        PatternPart(ROUTE, {"eventName": ["DeleteBucketTagging"]}),
        PatternPart(
            ROUTE,
            {
                **tagging,
                "requestParameters": {"Tagging": {"TagSet": {"Tag": {"Key": [context.approval_tag]}}}},
            },
            fallback=tagging,
        ),
    )


def prefilter_markers(context: DetectorContext) -> dict[str, tuple[str, ...]]:
    """Text a record must hold literally for this rule to find anything in it, per event name.

    Only a PutBucketTagging that names the approval key matters, and that key's ASCII letter runs
    appear as-is in any JSON spelling of the record (a letter can only be escaped as ``\\u00XX``,
    which :mod:`handlers.offline.prefilter` treats as a candidate anyway). ``detect`` thereby skips the
    everyday tagging calls without parsing them. A key without letters gives no marker.
    """
    runs = tuple(dict.fromkeys(_ASCII_LETTERS.findall(context.approval_tag)))
    return {"PutBucketTagging": runs} if runs else {}


def classify(record: Record, context: DetectorContext = NO_CONTEXT) -> list[Finding]:
    """An approval finding when the call sets the approval tag or deletes every tag."""
    event_name = as_text(record.get("eventName")) or ""
    key = context.approval_tag
    attempted = failed(record)
    if event_name == "DeleteBucketTagging":
        verb = "tried to remove" if attempted else "removes"
        reasons = [f"{verb} every tag, including any public-access approval ({key})"]
    else:
        values = [raw for tag_key, raw in tag_set(record) if tag_key == key]
        if not values:
            return []  # not about the approval (or unreadable): see the module docstring
        verb = "tried to set" if attempted else "sets"
        when = _event_time(record)
        reasons = [approval_reason(key, raw, verb=verb, when=when) for raw in values[:MAX_REASONS]]
        if len(values) > MAX_REASONS:
            reasons.append(f"... and {len(values) - MAX_REASONS} more {key} tags in the same request")
    return [
        make_finding(
            record,
            verdict="approval",
            kind="approval",
            route="guard-removal",
            variant="body",
            reasons=reasons,
        )
    ]
