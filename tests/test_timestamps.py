"""The one timestamp form: ISO 8601, UTC, ``Z``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from handlers.detection.timestamps import parse_zoned, utc_text

MOMENT = datetime(2026, 12, 4, 7, 56, 44, 123456, tzinfo=UTC)
PLUS_TWO = MOMENT.astimezone(timezone(timedelta(hours=2)))


@pytest.mark.parametrize(
    ("moment", "timespec", "expected"),
    [
        pytest.param(MOMENT, "seconds", "2026-12-04T07:56:44Z", id="seconds"),
        pytest.param(MOMENT, "milliseconds", "2026-12-04T07:56:44.123Z", id="milliseconds-asff"),
        pytest.param(MOMENT, "auto", "2026-12-04T07:56:44.123456Z", id="auto-keeps-microseconds"),
        pytest.param(MOMENT.replace(microsecond=0), "auto", "2026-12-04T07:56:44Z", id="auto-whole-second"),
        pytest.param(MOMENT.replace(tzinfo=None), "seconds", "2026-12-04T07:56:44Z", id="naive-is-utc"),
        pytest.param(PLUS_TWO, "seconds", "2026-12-04T07:56:44Z", id="offset-to-utc"),
    ],
)
def test_utc_text(moment: datetime, timespec: str, expected: str) -> None:
    assert utc_text(moment, timespec) == expected


def test_the_forms_it_replaced_agree_on_aware_utc_moments() -> None:
    assert utc_text(MOMENT) == MOMENT.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert utc_text(MOMENT, "milliseconds") == MOMENT.strftime("%Y-%m-%dT%H:%M:%S.") + "123Z"
    assert utc_text(MOMENT, "auto") == MOMENT.isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "expected an ISO 8601 timestamp with a zone"),
        ("x" * 41, "expected an ISO 8601 timestamp with a zone"),
        ("<!channel>", "expected an ISO 8601 timestamp"),
        ("2024-05-01T10:00:00", "has no time zone"),
        ("0001-01-01T00:00:00+14:00", "out of range"),  # before the earliest UTC moment
    ],
)
def test_parse_zoned_refuses_naming_the_field_never_echoing_the_value(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message) as refused:
        parse_zoned(value, "window.from")
    assert str(refused.value).startswith("window.from: ") and "channel" not in str(refused.value)


def test_parse_zoned_gives_utc() -> None:
    assert parse_zoned("2024-05-01T12:00:00+02:00", "t") == datetime(2024, 5, 1, 10, tzinfo=UTC)
