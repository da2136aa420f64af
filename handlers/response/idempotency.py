"""At-most-once action, at-least-once alert: a DynamoDB claim per CloudTrail eventID.

EventBridge may deliver the same event twice, and Lambda retries a failed asynchronous
invocation (with the same request id). The claim item ``event#<eventID>`` makes sure a
bucket is closed at most once per event and that no alert is ever dropped:

- **claim** (a conditional ``UpdateItem``, so nothing stored on the item is overwritten):
  it succeeds when there is no item, when the last holder failed (``failed`` or
  ``publish-failed``), when an ``in-progress`` holder's lease ran out (it died), or when
  the holder had this very Lambda request id (Lambda's own retry of a failed invocation:
  the holder cannot still be running). Anything else is a ``duplicate``.
- **record_action** before a remediation put: the target and the state it had before
  (for the undo command). Written ahead, so a retry never puts twice and never loses
  the undo; if it cannot be written, the caller does not act.
- **stage** the built alerts before publishing (``publishing``). A retry of an invocation
  whose publish (and release) failed finds them on the claim and re-sends them as they
  were, instead of deciding again on a bucket that is closed by now.
- **complete** (``done``) once every alert is out; **release** (``failed`` or
  ``publish-failed`` with the unsent alerts) otherwise. A failed release is returned to
  the caller, which raises: the invocation fails and Lambda retries it.

Every write sets ``expires_at`` (the table's TTL attribute, seven days: longer than
EventBridge's 24-hour retry window), so no item lives forever, whichever write created it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from handlers.response import aws_clients
from handlers.response.exposure import CallFailure, describe_error

RETENTION_SECONDS = 7 * 24 * 3600
LEASE_MARGIN_SECONDS = 5
ACTION_PREFIX = "act:"  # one attribute per remediation target: act:bucket:<name>, act:account:<id>

_CLAIMABLE = (
    "attribute_not_exists(pk) OR #status IN (:failed, :publish_failed) "
    "OR (#status IN (:in_progress, :publishing) "
    "AND (lease_until < :now OR attribute_not_exists(lease_until)))"
)
_SAME_REQUEST = " OR request_id = :request"
_HOLDER = "request_id = :request"


@dataclass
class Claim:
    """The outcome of claiming an event."""

    outcome: str  # new | retry | duplicate | unavailable | no-event-id
    pending_alerts: list[dict[str, Any]] = field(default_factory=list)
    actions: dict[str, dict[str, Any]] = field(default_factory=dict)  # target -> what it was before
    error: CallFailure | None = None

    @property
    def proceed(self) -> bool:
        return self.outcome != "duplicate"

    @property
    def durable(self) -> bool:
        """Whether this invocation holds a recorded claim (so actions can be written ahead)."""
        return self.outcome in ("new", "retry")


class IdempotencyStore:
    """Claims, stages, completes and releases event IDs in the idempotency table."""

    def __init__(
        self,
        table: str,
        region: str | None = None,
        clock: Callable[[], float] = time.time,
        request_id: str | None = None,
    ) -> None:
        self.table = table
        self.region = region
        self.clock = clock
        self.request_id = request_id or None

    @property
    def _dynamodb(self) -> Any:
        return aws_clients.client("dynamodb", self.region)

    def _expires(self) -> dict[str, str]:
        return {"N": str(int(self.clock()) + RETENTION_SECONDS)}

    def claim(self, event_id: str | None, lease_seconds: float) -> Claim:
        """Claim ``event_id`` for this invocation; a failure to reach the table does not stop the alert."""
        if not event_id:
            return Claim("no-event-id")
        now = int(self.clock())
        values: dict[str, Any] = {
            ":failed": {"S": "failed"},
            ":publish_failed": {"S": "publish-failed"},
            ":in_progress": {"S": "in-progress"},
            ":publishing": {"S": "publishing"},
            ":now": {"N": str(now)},
            ":lease": {"N": str(int(now + max(lease_seconds, 1) + LEASE_MARGIN_SECONDS))},
            ":expires": self._expires(),
        }
        expression = "SET #status = :in_progress, lease_until = :lease, expires_at = :expires"
        condition = _CLAIMABLE
        if self.request_id:
            values[":request"] = {"S": self.request_id}
            expression += ", request_id = :request"
            condition += _SAME_REQUEST
        else:
            expression += " REMOVE request_id"
        try:
            response = self._dynamodb.update_item(
                TableName=self.table,
                Key=_key(event_id),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return Claim("duplicate")
            return Claim("unavailable", error=describe_error("dynamodb:UpdateItem", exc))
        except (BotoCoreError, OSError) as exc:
            return Claim("unavailable", error=describe_error("dynamodb:UpdateItem", exc))
        old = response.get("Attributes") or {}
        if not old:
            return Claim("new")
        return Claim("retry", pending_alerts=_alerts(old), actions=_actions(old))

    def record_action(self, event_id: str | None, target: str, before: dict[str, Any]) -> CallFailure | None:
        """Write ahead that this invocation is about to act on ``target`` (and what it was before)."""
        if not event_id:
            return CallFailure(call="dynamodb:UpdateItem", error="NoEventId", message="no eventID to record")
        return self._update(
            event_id,
            "SET #action = :before",
            {":before": {"S": json.dumps(before, sort_keys=True)}},
            names={"#action": ACTION_PREFIX + target},
        )

    def stage(self, event_id: str | None, alerts: list[dict[str, Any]]) -> CallFailure | None:
        """Store the built alerts before publishing, so a retry re-sends them as built."""
        return self._update(
            event_id,
            "SET #status = :status, alerts = :alerts",
            {":status": {"S": "publishing"}, ":alerts": {"S": json.dumps(alerts, default=str)}},
        )

    def complete(self, event_id: str | None) -> CallFailure | None:
        """Mark the event done; a failure here only risks a duplicate alert, so it is reported, not raised."""
        return self._update(event_id, "SET #status = :status REMOVE alerts", {":status": {"S": "done"}})

    def release(
        self, event_id: str | None, error: str, unsent: list[dict[str, Any]] | None = None
    ) -> CallFailure | None:
        """Let a retry take the event over; with ``unsent`` alerts, the retry re-sends just those.

        Returns the failure when the release could not be written (the caller must raise).
        """
        values: dict[str, Any] = {
            ":status": {"S": "publish-failed" if unsent else "failed"},
            ":error": {"S": error[:1000]},
        }
        expression = "SET #status = :status, last_error = :error"
        if unsent:
            expression += ", alerts = :alerts"
            values[":alerts"] = {"S": json.dumps(unsent, default=str)}
        return self._update(event_id, expression, values)

    def _update(
        self,
        event_id: str | None,
        expression: str,
        values: dict[str, Any],
        names: dict[str, str] | None = None,
    ) -> CallFailure | None:
        if not event_id:
            return None
        # Every write keeps or sets the TTL, including one that creates the item (after an
        # unavailable claim); and only the claim's holder may write once a request id is known.
        set_part, _, rest = expression.partition(" REMOVE ")
        expression = f"{set_part}, expires_at = if_not_exists(expires_at, :expires)"
        if rest:
            expression += f" REMOVE {rest}"
        params: dict[str, Any] = {}
        if self.request_id:
            # The first writer of an item created outside a claim (the claim was unavailable) owns it.
            expression = expression.replace(
                "SET ", "SET request_id = if_not_exists(request_id, :request), ", 1
            )
            params["ConditionExpression"] = f"attribute_not_exists(request_id) OR {_HOLDER}"
            values = {**values, ":request": {"S": self.request_id}}
        try:
            self._dynamodb.update_item(
                TableName=self.table,
                Key=_key(event_id),
                UpdateExpression=expression,
                ExpressionAttributeNames={"#status": "status", **(names or {})}
                if "#status" in expression
                else dict(names or {}),
                ExpressionAttributeValues={**values, ":expires": self._expires()},
                **params,
            )
        except (ClientError, BotoCoreError, OSError) as exc:
            return describe_error("dynamodb:UpdateItem", exc)
        return None


def _key(event_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"event#{event_id}"}}


def _alerts(item: dict[str, Any]) -> list[dict[str, Any]]:
    raw = (item.get("alerts") or {}).get("S")
    if not raw:
        return []
    try:
        value = json.loads(raw)
    except ValueError:
        return []
    return [a for a in value if isinstance(a, dict)] if isinstance(value, list) else []


def _actions(item: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for name, value in item.items():
        if not name.startswith(ACTION_PREFIX):
            continue
        try:
            before = json.loads((value or {}).get("S") or "{}")
        except ValueError:
            before = {}
        found[name[len(ACTION_PREFIX) :]] = before if isinstance(before, dict) else {}
    return found
