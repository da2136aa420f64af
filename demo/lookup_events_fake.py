"""A local CloudTrail ``LookupEvents``, in AWS's documented shapes, for the demo and the tests.

moto does not implement ``LookupEvents``. This fake answers it from a list of CloudTrail
records, registered on a botocore client's ``before-call`` event (a handler that returns a
response skips the HTTP request, so nothing else of the client changes):

- one lookup attribute (``Username``, ``EventName``, ``EventId``, ``EventSource``,
  ``AccessKeyId``, ``ResourceName``, ``ReadOnly``), ``StartTime`` (inclusive) and ``EndTime``
  (exclusive), newest first;
- pages of ``MaxResults`` (at most 50) with an opaque ``NextToken``;
- each event with ``EventId``, ``EventName``, ``ReadOnly``, ``AccessKeyId``, ``EventTime``
  (a datetime, as botocore parses it), ``EventSource``, ``Username``, ``Resources`` and
  ``CloudTrailEvent`` (the record as a JSON string);
- ``throttle_after``: the page after that many raises ``ThrottlingException``, as CloudTrail
  does past 2 requests per second.

It imports nothing from the project: the demo's Lambda worker loads it beside the deployed code.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

MAX_RESULTS = 50


class _Http:
    status_code = 200


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def _username(identity: object) -> str | None:
    """What CloudTrail shows as the event's user name: user name, session name or root."""
    if not isinstance(identity, dict):
        return None
    if identity.get("type") == "Root":
        return "root"
    if isinstance(identity.get("userName"), str):
        return identity["userName"]
    arn = identity.get("arn")
    return arn.rsplit("/", 1)[-1] if isinstance(arn, str) and "/" in arn else None


def _epoch(value: object) -> datetime | None:
    """A request time as botocore serialises it (epoch seconds) or as a datetime."""
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return None


class LookupEventsFake:
    """``LookupEvents`` over ``records``; :meth:`install` puts it in front of a client."""

    def __init__(self, records: list[dict[str, Any]], throttle_after: int | None = None) -> None:
        self.events = sorted(
            (self._event(r) for r in records if isinstance(r, dict) and _time(r.get("eventTime"))),
            key=lambda e: e["EventTime"],
            reverse=True,
        )
        self.throttle_after = throttle_after
        self.requests: list[dict[str, Any]] = []

    @staticmethod
    def _event(record: dict[str, Any]) -> dict[str, Any]:
        parameters = (
            record.get("requestParameters") if isinstance(record.get("requestParameters"), dict) else {}
        )
        bucket = (parameters or {}).get("bucketName")
        identity = record.get("userIdentity")
        return {
            "EventId": str(record.get("eventID", "")),
            "EventName": str(record.get("eventName", "")),
            "ReadOnly": "true" if record.get("readOnly") is True else "false",
            "AccessKeyId": str((identity or {}).get("accessKeyId", "")) if isinstance(identity, dict) else "",
            "EventTime": _time(record.get("eventTime")),
            "EventSource": str(record.get("eventSource", "")),
            "Username": _username(identity) or "",
            "Resources": [{"ResourceType": "AWS::S3::Bucket", "ResourceName": bucket}]
            if isinstance(bucket, str)
            else [],
            "CloudTrailEvent": json.dumps(record),
        }

    def lookup(self, request: dict[str, Any]) -> dict[str, Any]:
        """One page for a request as the client would send it."""
        self.requests.append(request)
        if self.throttle_after is not None and len(self.requests) > self.throttle_after:
            raise ClientError(
                {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "LookupEvents"
            )
        attributes = request.get("LookupAttributes") or []
        if len(attributes) > 1:
            raise ClientError(
                {"Error": {"Code": "InvalidLookupAttributesException", "Message": "one attribute only"}},
                "LookupEvents",
            )
        start, end = _epoch(request.get("StartTime")), _epoch(request.get("EndTime"))
        wanted = attributes[0] if attributes else None
        found = [e for e in self.events if self._matches(e, wanted, start, end)]
        size = min(int(request.get("MaxResults") or MAX_RESULTS), MAX_RESULTS)
        offset = int(base64.b64decode(request["NextToken"]).decode()) if request.get("NextToken") else 0
        page: dict[str, Any] = {"Events": found[offset : offset + size]}
        if offset + size < len(found):
            page["NextToken"] = base64.b64encode(str(offset + size).encode()).decode()
        return page

    @staticmethod
    def _matches(event: dict[str, Any], wanted: Any, start: datetime | None, end: datetime | None) -> bool:
        when = event["EventTime"]
        if (start and when < start) or (end and when >= end):
            return False
        if not wanted:
            return True
        key, value = wanted.get("AttributeKey"), wanted.get("AttributeValue")
        if key == "ResourceName":
            return any(r.get("ResourceName") == value for r in event["Resources"])
        return event.get(key) == value

    def install(self, client: Any) -> None:
        """Answer ``client``'s LookupEvents calls (the client must be a CloudTrail client)."""

        def before_call(model: Any, params: dict[str, Any], **_: Any) -> Any:
            if model.name != "LookupEvents":
                return None
            body = params.get("body")
            request = json.loads(body) if isinstance(body, bytes | str) and body else {}
            return _Http(), self.lookup(request)

        client.meta.events.register("before-call.cloudtrail.LookupEvents", before_call)
