"""One way to write a moment: ISO 8601 in UTC with a ``Z``, as CloudTrail writes ``eventTime``."""

from __future__ import annotations

from datetime import UTC, datetime


def parse_zoned(value: object, name: str, max_length: int = 40) -> datetime:
    """``value``, an ISO 8601 moment with a time zone, in UTC. Anything else raises ``ValueError``
    naming ``name``: not a string or longer than ``max_length``, not ISO 8601, no zone, or a moment
    that leaves the representable range once moved to UTC."""
    if not isinstance(value, str) or len(value) > max_length:
        raise ValueError(f"{name}: expected an ISO 8601 timestamp with a zone")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        # The value is not echoed: it is untrusted text, and messages may reach an alert.
        raise ValueError(f"{name}: expected an ISO 8601 timestamp") from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{name}: the timestamp has no time zone")
    try:
        return when.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{name}: out of range") from None


def utc_text(moment: datetime, timespec: str = "seconds") -> str:
    """``2026-12-04T07:56:44Z`` for ``moment`` (a naive moment is taken as UTC).

    ``timespec`` as :meth:`datetime.isoformat`: ``"seconds"`` for records, ledgers and alerts,
    ``"milliseconds"`` where a format asks for them (ASFF), ``"auto"`` to keep what the moment has.
    """
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.isoformat(timespec=timespec).replace("+00:00", "Z")
