"""Buckets allowed to be public: the configured allow-list, or an approval tag that has not expired.

An approved bucket is alerted at low severity and never remediated. The approval tag's
value is the approval's expiry, an ISO-8601 date (valid through that day, UTC; basic
``20261231`` or extended ``2026-12-31``) or datetime (naive means UTC).

Whoever can tag a bucket writes this value, so it is read as hostile input:
- parsing never raises, whatever the value (``9999-12-31`` would overflow a naive "+1 day");
- an expiry beyond ``max_days`` from now counts as no approval (a tag cannot approve forever);
- an approval covers public **read** only (see :func:`covers`): write, ACL-write or
  policy-write access on an approved bucket is handled as unapproved;
- tags that could not be read give state ``unknown``: the bucket is not closed (it may be
  approved) but is not treated as approved either.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from fnmatch import fnmatchcase

from handlers.detection.access_levels import WRITE_ACCESS
from handlers.detection.timestamps import utc_text

DEFAULT_MAX_APPROVAL_DAYS = 90
_DATE_ONLY = re.compile(r"^\d{4}-?\d{2}-?\d{2}$")
_MAX_VALUE_CHARS = 64  # an ISO datetime is at most ~35 characters; longer values are not dates


@dataclass(frozen=True)
class Approval:
    """Whether a bucket may be public, and why (or why not).

    ``state``: approved | none | unknown (tags unreadable) | expired | invalid (unreadable
    value) | too-far (beyond the horizon) | not-covered (approval does not cover the access).
    """

    approved: bool
    basis: str | None  # allow-list | tag | None
    reason: str
    expires: str | None = None  # ISO-8601 UTC, for a tag approval (valid or expired)
    state: str = "none"

    @property
    def unknown(self) -> bool:
        """The bucket might be approved, but its tags could not be read."""
        return self.state == "unknown"


NOT_CHECKED = Approval(False, None, "not checked", state="none")


def allow_listed(bucket: str, patterns: tuple[str, ...]) -> str | None:
    """The first allow-list entry (name or fnmatch glob) matching ``bucket``; bucket names are lower case."""
    for pattern in patterns:
        if fnmatchcase(bucket, pattern):
            return pattern
    return None


def parse_expiry(value: object) -> datetime | None:
    """The instant an approval ends: a date lasts through its UTC day; ``None`` if unreadable.

    Never raises: any value that is not a representable ISO-8601 date or datetime is ``None``.
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > _MAX_VALUE_CHARS:
        return None
    try:
        if _DATE_ONLY.match(text):
            day = date.fromisoformat(text)  # both 2026-12-31 and 20261231
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            # The last representable day has no "next midnight": it lasts to the end of time.
            return datetime.max.replace(tzinfo=UTC) if day == date.max else start + timedelta(days=1)
        moment = datetime.fromisoformat(text.replace("z", "Z"))
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError, TypeError):
        return None


def expiry_text(moment: datetime) -> str:
    """An approval's end as written in alerts and findings (UTC, ``Z``); never raises."""
    try:
        return utc_text(moment, "auto")
    except (ValueError, OverflowError):  # an offset that moves the instant out of range
        return moment.isoformat()


def check_approval(
    bucket: str | None,
    tags: dict[str, str] | None,
    *,
    allow_list: tuple[str, ...],
    approval_tag: str,
    now: datetime,
    max_days: int = DEFAULT_MAX_APPROVAL_DAYS,
) -> Approval:
    """Decide whether ``bucket`` may be public; ``tags`` is ``None`` when they could not be read."""
    if not bucket:
        return Approval(False, None, "no bucket named, so no approval applies")
    pattern = allow_listed(bucket, allow_list)
    if pattern:
        return Approval(
            True,
            "allow-list",
            f"bucket matches allow-list entry {pattern!r} (EXCEPTION_BUCKETS)",
            state="approved",
        )
    if tags is None:
        return Approval(
            False,
            None,
            f"the bucket's tags could not be read, so approval tag {approval_tag!r} is unknown",
            state="unknown",
        )
    raw = tags.get(approval_tag)
    if raw is None:
        return Approval(False, None, f"not in the allow-list and no {approval_tag!r} tag")
    expiry = parse_expiry(raw)
    if expiry is None:
        return Approval(
            False,
            "tag",
            f"approval tag {approval_tag}={raw!r} is not an ISO-8601 date, so it counts as none",
            state="invalid",
        )
    stamp = expiry_text(expiry)
    if expiry <= now:
        return Approval(
            False, "tag", f"approval tag {approval_tag}={raw!r} expired at {stamp}", stamp, "expired"
        )
    try:
        horizon: datetime | None = now + timedelta(days=max_days)
    except OverflowError:
        horizon = None
    if horizon is not None and expiry > horizon:
        return Approval(
            False,
            "tag",
            f"approval tag {approval_tag}={raw!r} ends {stamp}, later than the {max_days}-day maximum "
            f"(MAX_APPROVAL_DAYS), so it counts as none",
            stamp,
            "too-far",
        )
    return Approval(
        True, "tag", f"approval tag {approval_tag}={raw!r} is valid until {stamp}", stamp, "approved"
    )


def covers(approval: Approval, access: Iterable[str]) -> Approval:
    """``approval`` limited to public read: an approved bucket with write-like access is not approved."""
    if not approval.approved:
        return approval
    writes = sorted(WRITE_ACCESS.intersection(access))
    if not writes:
        return approval
    return replace(
        approval,
        approved=False,
        state="not-covered",
        reason=f"{approval.reason}, but an approval covers public read only and this grants "
        f"{', '.join(writes)}: handled as unapproved",
    )
