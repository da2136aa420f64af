"""A local CloudTrail ``LookupEvents``, in AWS's documented shapes, for the demo and the tests.

moto does not implement ``LookupEvents``. This fake answers it from a list of CloudTrail
records, registered on a botocore client's ``before-call`` event (a handler that returns a
response skips the HTTP request, so nothing else of the client changes). What it does, as the
API reference describes it:

- at most one lookup attribute: ``Username``, ``EventName``, ``EventId``, ``EventSource``,
  ``AccessKeyId``, ``ResourceName``, ``ResourceType`` or ``ReadOnly`` (two or an unknown key:
  ``InvalidLookupAttributesException``);
- ``StartTime`` and ``EndTime`` both inclusive ("after or at", "before or at"); a start after
  the end is ``InvalidTimeRangeException``; newest first;
- pages of ``MaxResults`` (default 50, 1 to 50) with an opaque ``NextToken`` that is only
  valid with the request it came from (else ``InvalidNextTokenException``);
- each event with ``EventId``, ``EventName``, ``ReadOnly`` (``"true"``/``"false"``),
  ``AccessKeyId``, ``EventTime`` (a datetime, as botocore parses it), ``EventSource``,
  ``Username``, ``Resources`` and ``CloudTrailEvent`` (the record as a JSON string);
- ``Username`` is what CloudTrail shows as the user name: an IAM user's ``userName``, the
  *session name* of an assumed role (the last part of ``assumed-role/<role>/<session>``, as in
  the AWS CLI's own ``lookup-events`` example), ``root`` for the root user, absent for AWS
  services;
- ``throttle_after=N``: every request after ``N`` pages fails with ``error_code``
  (``ThrottlingException`` by default, as CloudTrail does past 2 requests per second).

:attr:`LookupEventsFake.requests` holds every request as botocore serialised it (times in epoch
seconds). It imports nothing from the project: the demo's Lambda worker loads it beside the
deployed code.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

MAX_RESULTS = 50
ATTRIBUTE_KEYS = frozenset(
    {
        "Username",
        "EventName",
        "EventId",
        "EventSource",
        "AccessKeyId",
        "ResourceName",
        "ResourceType",
        "ReadOnly",
    }
)
_SEED_NAMESPACE = uuid.UUID("6f6b5b5e-3c1d-4b8e-9a51-0d7f4c2f1a10")


class _Http:
    status_code = 200


def _time(value: object) -> datetime | None:
    """A record's ``eventTime`` (``2026-11-02T09:14:23Z``) as an aware datetime; else None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _username(identity: object) -> str | None:
    """What CloudTrail shows as the event's user name: user name, session name or ``root``."""
    if not isinstance(identity, dict):
        return None
    if identity.get("type") == "Root":
        return "root"
    if identity.get("type") == "IAMUser" and isinstance(identity.get("userName"), str):
        return str(identity["userName"])
    arn = identity.get("arn")
    if isinstance(arn, str) and ":assumed-role/" in arn:
        return arn.rsplit("/", 1)[-1]
    if isinstance(identity.get("userName"), str):
        return str(identity["userName"])
    return None


def _epoch(value: object) -> datetime | None:
    """A request time as botocore serialises it (epoch seconds) or as a datetime."""
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    return None


def _error(code: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "LookupEvents")


def _resources(record: dict[str, Any]) -> list[dict[str, str]]:
    parameters = record.get("requestParameters")
    parameters = parameters if isinstance(parameters, dict) else {}
    bucket = parameters.get("bucketName")
    if not isinstance(bucket, str):
        return []
    found = [{"ResourceType": "AWS::S3::Bucket", "ResourceName": bucket}]
    key = parameters.get("key")
    if isinstance(key, str):
        found.append({"ResourceType": "AWS::S3::Object", "ResourceName": f"{bucket}/{key}"})
    return found


def event_of(record: dict[str, Any]) -> dict[str, Any] | None:
    """The ``LookupEvents`` entry for one CloudTrail record (None without a readable ``eventTime``)."""
    when = _time(record.get("eventTime"))
    if when is None:
        return None
    identity = record.get("userIdentity")
    event: dict[str, Any] = {
        "EventId": str(record.get("eventID", "")),
        "EventName": str(record.get("eventName", "")),
        "ReadOnly": "true" if record.get("readOnly") is True else "false",
        "EventTime": when,
        "EventSource": str(record.get("eventSource", "")),
        "Resources": _resources(record),
        "CloudTrailEvent": json.dumps(record),
    }
    key = identity.get("accessKeyId") if isinstance(identity, dict) else None
    if isinstance(key, str) and key:
        event["AccessKeyId"] = key
    name = _username(identity)
    if name:
        event["Username"] = name
    return event


def seed_from_records(
    records: Iterable[object],
    *,
    now: datetime,
    keep: Callable[[dict[str, Any]], bool] | None = None,
    oldest_days: float = 89.0,
    newest_days: float = 1.0,
) -> list[dict[str, Any]]:
    """Copies of ``records`` (those ``keep`` accepts) moved into the past, as earlier history.

    The copies keep their order and spread evenly between ``oldest_days`` and ``newest_days``
    before ``now``, so they all fall inside LookupEvents' 90 days. Each gets a new, stable
    ``eventID``: a replay of the original record is then not mistaken for its own history.
    """
    kept = [
        r for r in records if isinstance(r, dict) and _time(r.get("eventTime")) and (keep is None or keep(r))
    ]
    ordered = sorted(enumerate(kept), key=lambda item: (_time(item[1].get("eventTime")), item[0]))
    seeded: list[dict[str, Any]] = []
    span = max(0.0, oldest_days - newest_days)
    for position, (index, record) in enumerate(ordered):
        fraction = position / (len(ordered) - 1) if len(ordered) > 1 else 0.5
        earlier = copy.deepcopy(record)
        earlier["eventTime"] = _stamp(now - timedelta(days=oldest_days - fraction * span))
        earlier["eventID"] = str(uuid.uuid5(_SEED_NAMESPACE, f"{index}:{record.get('eventID')}"))
        seeded.append(earlier)
    return seeded


class LookupEventsFake:
    """``LookupEvents`` over ``records``; :meth:`install` puts it in front of a client."""

    def __init__(
        self,
        records: Iterable[object],
        throttle_after: int | None = None,
        *,
        error_code: str = "ThrottlingException",
    ) -> None:
        events = (event_of(r) for r in records if isinstance(r, dict))
        self.events = sorted((e for e in events if e), key=lambda e: e["EventTime"], reverse=True)
        self.throttle_after = throttle_after
        self.error_code = error_code
        self.requests: list[dict[str, Any]] = []
        self.pages = 0

    @classmethod
    def from_dataset(
        cls,
        records: Iterable[object],
        *,
        now: datetime,
        keep: Callable[[dict[str, Any]], bool] | None = None,
        throttle_after: int | None = None,
    ) -> LookupEventsFake:
        """A fake holding ``records`` (those ``keep`` accepts) as history of the 89 days before ``now``."""
        return cls(seed_from_records(records, now=now, keep=keep), throttle_after)

    def lookup(self, request: dict[str, Any]) -> dict[str, Any]:
        """One page for a request as the client serialises it; raises ``ClientError`` as AWS would."""
        self.requests.append(request)
        if self.throttle_after is not None and self.pages >= self.throttle_after:
            raise _error(self.error_code, "Rate exceeded")
        attributes = request.get("LookupAttributes") or []
        if len(attributes) > 1 or any(a.get("AttributeKey") not in ATTRIBUTE_KEYS for a in attributes):
            raise _error("InvalidLookupAttributesException", "one attribute of the documented keys")
        start, end = _epoch(request.get("StartTime")), _epoch(request.get("EndTime"))
        if start and end and start > end:
            raise _error("InvalidTimeRangeException", "StartTime is after EndTime")
        size = request.get("MaxResults", MAX_RESULTS)
        if not isinstance(size, int) or not 1 <= size <= MAX_RESULTS:
            raise _error("InvalidMaxResultsException", "MaxResults must be 1 to 50")
        query = hashlib.sha256(
            json.dumps([attributes, request.get("StartTime"), request.get("EndTime")]).encode()
        ).hexdigest()[:16]
        offset = self._offset(request.get("NextToken"), query)
        wanted = attributes[0] if attributes else None
        found = [e for e in self.events if self._matches(e, wanted, start, end)]
        self.pages += 1
        page: dict[str, Any] = {"Events": found[offset : offset + size]}
        if offset + size < len(found):
            page["NextToken"] = base64.b64encode(f"{query}:{offset + size}".encode()).decode()
        return page

    @staticmethod
    def _offset(token: object, query: str) -> int:
        if token is None:
            return 0
        try:
            bound, offset = base64.b64decode(str(token), validate=True).decode().split(":")
            if bound == query:
                return int(offset)
        except ValueError:
            pass
        raise _error("InvalidNextTokenException", "the token does not belong to this request")

    @staticmethod
    def _matches(event: dict[str, Any], wanted: Any, start: datetime | None, end: datetime | None) -> bool:
        when = event["EventTime"]
        if (start and when < start) or (end and when > end):
            return False
        if not wanted:
            return True
        key, value = wanted.get("AttributeKey"), wanted.get("AttributeValue")
        if key in ("ResourceName", "ResourceType"):
            return any(r.get(key) == value for r in event["Resources"])
        return event.get(key) == value

    def install(self, client: Any) -> None:
        """Answer ``client``'s LookupEvents calls (the client must be a CloudTrail client)."""

        def before_call(model: Any, params: dict[str, Any], **_: Any) -> Any:
            if model.name != "LookupEvents":
                return None
            body = params.get("body")
            request = json.loads(body) if isinstance(body, bytes | str) and body else {}
            return _Http(), self.lookup(request)

        client.meta.events.register(
            "before-call.cloudtrail.LookupEvents", before_call, unique_id=f"lookup-events-fake-{id(self)}"
        )
