"""Act only on events our own rules delivered: the EventBridge envelope of a CloudTrail API call.

Anyone holding ``lambda:InvokeFunction`` on the response function controls its whole input.
Remediation always rests on live reads, but the alert would still carry whatever actor, IP
and user agent a forged event claims, and a bare record would be acted on. So an event is
handled only when it is an "AWS API Call via CloudTrail" envelope that:

- comes from a source the rules deploy (``aws.s3``, ``aws.cloudtrail``, ``aws.kms``), with a
  ``detail.eventSource`` that belongs to that source;
- names the configured account three times alike: envelope ``account``,
  ``detail.recipientAccountId`` (and the stack's ``EXPECTED_ACCOUNT_ID``);
- comes from a watched region (envelope ``region`` and ``detail.awsRegion``);
- carries an ``eventID``.

Anything else is refused (:func:`rejection`): logged, counted and alerted at high severity,
at most once per :data:`ALERT_WINDOW_SECONDS` per account (:class:`RejectionLimiter`), since
a flood of forged events must not become a flood of pages.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

from botocore.exceptions import BotoCoreError, ClientError

from handlers.detection.classify import EVENTBRIDGE_DETAIL_TYPE
from handlers.detection.event_patterns import EVENTBRIDGE_SOURCES
from handlers.response import aws_clients
from handlers.response.response_config import Settings

ALERT_WINDOW_SECONDS = 900
RETENTION_SECONDS = 2 * 24 * 3600
_EVENT_ID = re.compile(r"^[A-Za-z0-9-]{1,128}$")
# EventBridge source -> the CloudTrail eventSource values it carries.
_EVENT_SOURCES: dict[str, frozenset[str]] = {}
for _event_source, _source in EVENTBRIDGE_SOURCES.items():
    _EVENT_SOURCES[_source] = _EVENT_SOURCES.get(_source, frozenset()) | {_event_source}


def rejection(event: Any, settings: Settings) -> str | None:
    """Why ``event`` must not be acted on, or ``None`` when its provenance holds."""
    if not isinstance(event, dict):
        return f"the event is a {type(event).__name__}, not an EventBridge envelope"
    if event.get("detail-type") != EVENTBRIDGE_DETAIL_TYPE:
        return (
            "not an EventBridge 'AWS API Call via CloudTrail' envelope (a bare record or another event type)"
        )
    source = event.get("source")
    if not isinstance(source, str) or source not in _EVENT_SOURCES:
        return "the envelope's source is not one the detector's rules deploy"
    detail = event.get("detail")
    if not isinstance(detail, dict):
        return "the envelope carries no CloudTrail record"
    if detail.get("eventSource") not in _EVENT_SOURCES[source]:
        return "the record's eventSource does not belong to the envelope's source"
    account = settings.expected_account_id
    if event.get("account") != account or detail.get("recipientAccountId") != account:
        return f"the envelope account and the record's recipientAccountId must both be {account}"
    regions = settings.watched_regions
    for where, region in (
        ("envelope region", event.get("region")),
        ("record awsRegion", detail.get("awsRegion")),
    ):
        if not isinstance(region, str) or (regions and region not in regions):
            return f"the {where} is not a watched region ({', '.join(regions) or 'none configured'})"
    event_id = detail.get("eventID")
    if not isinstance(event_id, str) or not _EVENT_ID.match(event_id):
        return "the record has no valid eventID"
    return None


class RejectionLimiter:
    """At most one rejection alert per window, shared through the idempotency table.

    One ``UpdateItem`` counts the rejection in the window's item and says whether it is the
    first. When the table cannot be reached, an in-process limit (one per window per
    container) takes over, so refusals still alert but cannot flood.
    """

    _lock = threading.Lock()
    _local_last: ClassVar[dict[str, float]] = {}  # per container, when the table is unreachable

    def __init__(self, table: str, account: str, region: str | None, clock: Callable[[], float] = time.time):
        self.table = table
        self.account = account
        self.region = region
        self.clock = clock

    def first_in_window(self) -> tuple[bool, int | None]:
        """(whether to alert, the window's count so far if known)."""
        now = self.clock()
        window = int(now // ALERT_WINDOW_SECONDS)
        try:
            response = aws_clients.client("dynamodb", self.region).update_item(
                TableName=self.table,
                Key={"pk": {"S": f"rejected#{self.account}#{window}"}},
                UpdateExpression="ADD rejections :one SET expires_at = if_not_exists(expires_at, :expires)",
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":expires": {"N": str(int(now) + RETENTION_SECONDS)},
                },
                ReturnValues="UPDATED_NEW",
            )
            count = int(response.get("Attributes", {}).get("rejections", {}).get("N", "1"))
            return count == 1, count
        except (ClientError, BotoCoreError, OSError, ValueError):
            with self._lock:
                last = self._local_last.get(self.account)
                if last is not None and now - last < ALERT_WINDOW_SECONDS:
                    return False, None
                self._local_last[self.account] = now
            return True, None

    def release(self) -> None:
        """Give the window back after the alert could not be published, so the retry alerts."""
        now = self.clock()
        window = int(now // ALERT_WINDOW_SECONDS)
        with self._lock:
            self._local_last.pop(self.account, None)
        # If this fails the window stays used: at worst this refusal is not alerted on the retry.
        with contextlib.suppress(ClientError, BotoCoreError, OSError):
            aws_clients.client("dynamodb", self.region).update_item(
                TableName=self.table,
                Key={"pk": {"S": f"rejected#{self.account}#{window}"}},
                UpdateExpression="ADD rejections :minus SET expires_at = if_not_exists(expires_at, :expires)",
                ExpressionAttributeValues={
                    ":minus": {"N": "-1"},
                    ":expires": {"N": str(int(now) + RETENTION_SECONDS)},
                },
            )
