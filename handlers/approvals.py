"""Buckets allowed to be public: the configured allow-list, or an approval tag that has not expired.

An approved bucket is alerted at low severity and never remediated. The approval
tag's value is the approval's expiry, an ISO-8601 date (valid through that day, UTC)
or datetime (naive means UTC). An expired or unreadable approval counts as none.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from fnmatch import fnmatchcase


@dataclass(frozen=True)
class Approval:
    """Whether a bucket may be public, and why (or why not)."""

    approved: bool
    basis: str | None  # allow-list | tag | None
    reason: str
    expires: str | None = None  # ISO-8601 UTC, for a tag approval (valid or expired)


def allow_listed(bucket: str, patterns: tuple[str, ...]) -> str | None:
    """The first allow-list entry (name or fnmatch glob) matching ``bucket``; bucket names are lower case."""
    for pattern in patterns:
        if fnmatchcase(bucket, pattern):
            return pattern
    return None


def parse_expiry(value: str) -> datetime | None:
    """The instant an approval ends: a date lasts through its UTC day; ``None`` if unreadable."""
    text = value.strip()
    if not text:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def check_approval(
    bucket: str | None,
    tags: dict[str, str] | None,
    *,
    allow_list: tuple[str, ...],
    approval_tag: str,
    now: datetime,
) -> Approval:
    """Decide whether ``bucket`` may be public; ``tags`` is ``None`` when they could not be read."""
    if not bucket:
        return Approval(False, None, "no bucket named, so no approval applies")
    pattern = allow_listed(bucket, allow_list)
    if pattern:
        return Approval(
            True, "allow-list", f"bucket matches allow-list entry {pattern!r} (EXCEPTION_BUCKETS)"
        )
    if tags is None:
        return Approval(
            False, None, f"the bucket's tags could not be read, so approval tag {approval_tag!r} is unknown"
        )
    raw = tags.get(approval_tag)
    if raw is None:
        return Approval(False, None, f"not in the allow-list and no {approval_tag!r} tag")
    expiry = parse_expiry(raw)
    if expiry is None:
        return Approval(
            False, "tag", f"approval tag {approval_tag}={raw!r} is not an ISO-8601 date, so it counts as none"
        )
    stamp = expiry.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if expiry <= now:
        return Approval(False, "tag", f"approval tag {approval_tag}={raw} expired at {stamp}", stamp)
    return Approval(True, "tag", f"approval tag {approval_tag}={raw} is valid until {stamp}", stamp)
