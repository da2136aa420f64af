"""At-most-once handling of an at-least-once delivery: a DynamoDB claim per CloudTrail eventID.

EventBridge may deliver the same event twice, and the Lambda retries a failed
invocation. The first invocation claims the eventID with a conditional put
(``attribute_not_exists(pk)``); a duplicate finds the claim and stops, so nothing is
done or alerted twice. The claim carries a status and a lease:

- ``in-progress`` until the alert is out, then ``done``;
- ``publish-failed`` with the alerts that could not be sent: the retry re-sends
  those exact alerts instead of acting again (the bucket is closed by then, so a
  fresh look would lose the previous state and what was done);
- ``failed`` for any other error: the retry starts over;
- an ``in-progress`` claim whose lease (the invocation's remaining time) has run out
  belongs to an invocation that died, and may be taken over.

Items expire through the table's TTL attribute ``expires_at`` after seven days,
longer than EventBridge's 24-hour retry window.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from handlers import aws_clients
from handlers.exposure import CallFailure, describe_error

RETENTION_SECONDS = 7 * 24 * 3600
LEASE_MARGIN_SECONDS = 5

_CLAIMABLE = (
    "attribute_not_exists(pk) OR #status IN (:failed, :publish_failed) "
    "OR (#status = :in_progress AND lease_until < :now)"
)


@dataclass
class Claim:
    """The outcome of claiming an event."""

    outcome: str  # new | retry | duplicate | unavailable | no-event-id
    pending_alerts: list[dict[str, Any]] = field(default_factory=list)
    error: CallFailure | None = None

    @property
    def proceed(self) -> bool:
        return self.outcome != "duplicate"


class IdempotencyStore:
    """Claims, completes and releases event IDs in the idempotency table."""

    def __init__(self, table: str, region: str | None = None, clock=time.time) -> None:  # type: ignore[no-untyped-def]
        self.table = table
        self.region = region
        self.clock = clock

    @property
    def _dynamodb(self) -> Any:
        return aws_clients.client("dynamodb", self.region)

    def claim(self, event_id: str | None, lease_seconds: float) -> Claim:
        """Claim ``event_id`` for this invocation; a failure to reach the table does not stop the alert."""
        if not event_id:
            return Claim("no-event-id")
        now = int(self.clock())
        item = {
            "pk": {"S": f"event#{event_id}"},
            "status": {"S": "in-progress"},
            "lease_until": {"N": str(int(now + max(lease_seconds, 1) + LEASE_MARGIN_SECONDS))},
            "expires_at": {"N": str(now + RETENTION_SECONDS)},
        }
        try:
            response = self._dynamodb.put_item(
                TableName=self.table,
                Item=item,
                ConditionExpression=_CLAIMABLE,
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":failed": {"S": "failed"},
                    ":publish_failed": {"S": "publish-failed"},
                    ":in_progress": {"S": "in-progress"},
                    ":now": {"N": str(now)},
                },
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return Claim("duplicate")
            return Claim("unavailable", error=describe_error("dynamodb:PutItem", exc))
        except (BotoCoreError, OSError) as exc:
            return Claim("unavailable", error=describe_error("dynamodb:PutItem", exc))
        old = response.get("Attributes") or {}
        if not old:
            return Claim("new")
        pending = old.get("alerts", {}).get("S")
        return Claim("retry", pending_alerts=json.loads(pending) if pending else [])

    def complete(self, event_id: str | None) -> CallFailure | None:
        """Mark the event done; a failure here only risks a duplicate alert, so it is reported, not raised."""
        return self._set(event_id, "done", None, None)

    def release(self, event_id: str | None, error: str, unsent: list[dict[str, Any]] | None = None) -> None:
        """Let a retry take the event over; with ``unsent`` alerts, the retry re-sends just those."""
        status = "publish-failed" if unsent else "failed"
        self._set(event_id, status, error[:1000], json.dumps(unsent) if unsent else None)

    def _set(
        self, event_id: str | None, status: str, error: str | None, alerts: str | None
    ) -> CallFailure | None:
        if not event_id:
            return None
        names = {"#status": "status"}
        values: dict[str, Any] = {":status": {"S": status}}
        expression = "SET #status = :status"
        if error is not None:
            expression += ", last_error = :error"
            values[":error"] = {"S": error}
        if alerts is not None:
            expression += ", alerts = :alerts"
            values[":alerts"] = {"S": alerts}
        else:
            expression += " REMOVE alerts"
        try:
            self._dynamodb.update_item(
                TableName=self.table,
                Key={"pk": {"S": f"event#{event_id}"}},
                UpdateExpression=expression,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except (ClientError, BotoCoreError, OSError) as exc:
            return describe_error("dynamodb:UpdateItem", exc)
        return None
