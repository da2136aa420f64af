"""Alert once per exposure: a ledger of the exposures already reported, per bucket.

The sweep looks at every bucket every hour; without memory it would re-alert every
public bucket every hour. One DynamoDB item per exposed bucket (in the idempotency
table, ``pk = exposure#<account>#<bucket>``) holds the exposure's *signature* and when
it was alerted. Both the real-time path and the sweep write it, so whichever reports an
exposure first keeps the other quiet.

The signature is a set of tokens ``<via>/<access>/<state>``, e.g. ``policy/read/public``
or ``bucket-acl/write/held`` (held back by Block Public Access). A new look is *news*,
and alerts, when it has a token the recorded signature does not cover: a new path, a new
access level, or a path that was held back and is public again. Improvements (a path
closed, public -> held back) are recorded quietly, so a later relapse is news again. A
bucket found closed loses its item, so re-exposing it alerts again.

Each item also holds its exposure *window*: ``opened_at``, the first evidence (the event's
time, or the sweep's first sighting), kept through later writes; once a review of the closed
window has been requested, ``closed_at`` replaces it, so a relapse opens a new window. A
closed window is sent to the exposure review (:mod:`handlers.response.review_queue`) before its item
may go: when that send fails, the item stays and the next look sends it again.

Items carry no TTL: an item lives exactly as long as its exposure (the sweep deletes it
when the bucket is closed or deleted). The daily digest claims ``digest#<account>#<day>``
(with a TTL) so overlapping runs send it once.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from botocore.exceptions import BotoCoreError, ClientError

from handlers.detection.timestamps import utc_text
from handlers.response import aws_clients
from handlers.response.decision_log import log_decision_at
from handlers.response.exposure import CallFailure, Exposure, describe_error
from handlers.response.review_queue import review_request, send_review

log = logging.getLogger("handlers.response.exposure_ledger")
EXPOSED_STATUSES = frozenset({"public-now", "exposable"})
DIGEST_RETENTION_SECONDS = 7 * 24 * 3600
# A token's state ranks: public beats held back; "undecided" guards rank with held back, so a
# transient failure to read BPA is not news.
_RANK = {"public": 1, "held": 0, "undecided": 0}


class LedgerUnavailable(RuntimeError):
    """The ledger could not be read or written; carries the failed call."""

    def __init__(self, failure: CallFailure) -> None:
        super().__init__(f"{failure['call']}: {failure['error']}: {failure['message']}")
        self.failure = failure


def signature(exposure: Exposure) -> tuple[str, ...]:
    """The exposure's tokens ``via/access/state``, sorted (see module docstring)."""
    tokens = set()
    for path in exposure["paths"]:
        state = "public" if path["effective"] else ("held" if path["held_back_by"] else "undecided")
        for level in path["access"] or ["unknown"]:
            tokens.add(f"{path['via']}/{level}/{state}")
    return tuple(sorted(tokens))


def is_news(current: Iterable[str], recorded: Iterable[str] | None) -> bool:
    """Whether ``current`` shows anything ``recorded`` does not cover (``None``: nothing recorded)."""
    if recorded is None:
        return True
    best: dict[str, int] = {}
    for token in recorded:
        key, _, state = token.rpartition("/")
        best[key] = max(best.get(key, -1), _RANK.get(state, 1))
    for token in current:
        key, _, state = token.rpartition("/")
        if best.get(key, -1) < _RANK.get(state, 1):
            return True
    return False


@dataclass(frozen=True)
class LedgerEntry:
    """What the ledger remembers about one exposed bucket."""

    bucket: str
    signature: tuple[str, ...]
    status: str
    severity: str
    region: str | None
    alerted_at: str | None
    updated_at: str | None
    source: str  # sweep | realtime
    subject: str | None
    opened_at: str | None = None  # first evidence of the open window
    closed_at: str | None = None  # set once the closed window was sent for review
    # The item's signature text as stored, when it does not read as a token list: conditional
    # writes must name what is there, or the item could never be replaced (nor the bucket alerted).
    stored_signature: str | None = field(default=None, compare=False, repr=False)

    @property
    def window_start(self) -> str | None:
        """When the open window began: its first evidence, else the earliest time on record."""
        return self.opened_at or self.alerted_at or self.updated_at

    @property
    def raw_signature(self) -> str:
        if self.stored_signature is not None:
            return self.stored_signature
        return json.dumps(list(self.signature))


# The text attributes of an item besides its key and signature (restore writes them back).
ENTRY_FIELDS = (
    "status", "severity", "region", "alerted_at", "updated_at", "source", "subject", "opened_at", "closed_at",
)  # fmt: skip

# ``previous`` for a write that does not depend on what was there (see ``ExposureLedger.record``).
UNCONDITIONAL = LedgerEntry("", (), "", "", None, None, None, "", None)


def _stamp(now: datetime) -> str:
    return utc_text(now)


class ExposureLedger:
    """Reads and writes the exposure items of one account in the idempotency table."""

    def __init__(self, table: str, account: str, region: str | None = None) -> None:
        self.table = table
        self.account = account
        self.region = region

    @property
    def _dynamodb(self) -> Any:
        return aws_clients.client("dynamodb", self.region)

    def key(self, bucket: str) -> dict[str, Any]:
        return {"pk": {"S": f"exposure#{self.account}#{bucket}"}}

    def _call(self, operation: str, **params: Any) -> Any:
        try:
            return getattr(self._dynamodb, operation)(TableName=self.table, **params)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise
            raise LedgerUnavailable(describe_error(f"dynamodb:{_api_name(operation)}", exc)) from exc
        except (BotoCoreError, OSError) as exc:
            raise LedgerUnavailable(describe_error(f"dynamodb:{_api_name(operation)}", exc)) from exc

    def get(self, bucket: str) -> LedgerEntry | None:
        """The recorded exposure of ``bucket`` (strongly consistent), or ``None``."""
        item = self._call("get_item", Key=self.key(bucket), ConsistentRead=True).get("Item")
        return _entry(bucket, item) if item else None

    def record(
        self,
        bucket: str,
        tokens: tuple[str, ...],
        previous: LedgerEntry | None,
        *,
        status: str,
        severity: str,
        region: str | None,
        now: datetime,
        source: str,
        subject: str | None,
        alerted: bool,
        opened_at: str | None = None,
    ) -> bool:
        """Write ``tokens`` if the item is still what the caller read; ``False`` if it changed meanwhile.

        ``previous``: the entry read before (``None``: none existed; :data:`UNCONDITIONAL`: write anyway).

        ``alerted``: this write goes with an alert (sets ``alerted_at``); otherwise it records an
        improvement quietly and keeps the alert time.

        ``opened_at``: the first evidence of this exposure (default ``now``), for a public one
        (``status`` ``public-now``): an open window keeps the earlier start, a window closed
        meanwhile (``closed_at``) starts again. Other statuses leave the window as it is.
        """
        values: dict[str, Any] = {
            ":sig": {"S": json.dumps(list(tokens))},
            ":status": {"S": status},
            ":severity": {"S": severity},
            ":region": {"S": region or ""},
            ":now": {"S": _stamp(now)},
            ":source": {"S": source},
        }
        expression = (
            "SET signature = :sig, #status = :status, severity = :severity, #region = :region, "
            "updated_at = :now, #source = :source"
        )
        public = status == "public-now"
        if public:  # a public window: keep its start, or open a new one after a closed window
            expression += ", opened_at = if_not_exists(opened_at, :opened)"
            values[":opened"] = {"S": opened_at or _stamp(now)}
        if alerted:
            expression += ", alerted_at = :now, subject = :subject"
            values[":subject"] = {"S": subject or ""}
        if public:
            expression += " REMOVE closed_at"
        params: dict[str, Any] = {}
        if previous is UNCONDITIONAL:
            pass  # the real-time path: it alerted whatever was recorded, so it simply overwrites
        elif previous is None:
            params["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            params["ConditionExpression"] = "signature = :old"
            values[":old"] = {"S": previous.raw_signature}
        try:
            self._call(
                "update_item",
                Key=self.key(bucket),
                UpdateExpression=expression,
                ExpressionAttributeNames={"#status": "status", "#region": "region", "#source": "source"},
                ExpressionAttributeValues=values,
                **params,
            )
        except ClientError:  # ConditionalCheckFailedException: someone recorded it meanwhile
            return False
        return True

    def close_window(self, bucket: str, closed_at: str) -> bool:
        """Mark the open window of ``bucket`` closed and reviewed; ``False`` when there is no item."""
        try:
            self._call(
                "update_item",
                Key=self.key(bucket),
                UpdateExpression="SET closed_at = :closed REMOVE opened_at",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":closed": {"S": closed_at}},
            )
        except ClientError:
            return False
        return True

    def restore(self, bucket: str, previous: LedgerEntry | None) -> None:
        """Undo a claim whose alert could not be published, so the next look alerts again."""
        if previous is None:
            self._call("delete_item", Key=self.key(bucket))
            return
        self._call("put_item", Item=_item(self.key(bucket), previous))

    def forget(self, bucket: str, entry: LedgerEntry) -> bool:
        """Delete the item of a bucket found closed or deleted, unless it changed since ``entry``."""
        try:
            self._call(
                "delete_item",
                Key=self.key(bucket),
                ConditionExpression="signature = :old",
                ExpressionAttributeValues={":old": {"S": entry.raw_signature}},
            )
        except ClientError:
            return False
        return True

    def entries(self) -> dict[str, LedgerEntry]:
        """This account's exposure items by bucket (a paged Scan; items exist only for open exposures)."""
        prefix = f"exposure#{self.account}#"
        found: dict[str, LedgerEntry] = {}
        params: dict[str, Any] = {
            "FilterExpression": "begins_with(pk, :prefix)",
            "ExpressionAttributeValues": {":prefix": {"S": prefix}},
        }
        while True:
            page = self._call("scan", **params)
            for item in page.get("Items", []):
                bucket = item["pk"]["S"][len(prefix) :]
                found[bucket] = _entry(bucket, item)
            if not page.get("LastEvaluatedKey"):
                return found
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def claim_digest(self, day: str, now: float) -> bool:
        """Claim the digest of ``day`` (YYYY-MM-DD); ``False`` when another run already sent it."""
        try:
            self._call(
                "put_item",
                Item={
                    "pk": {"S": f"digest#{self.account}#{day}"},
                    "expires_at": {"N": str(int(now + DIGEST_RETENTION_SECONDS))},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError:
            return False
        return True

    def release_digest(self, day: str) -> None:
        """Let the next run send the digest of ``day`` again (its publish failed)."""
        self._call("delete_item", Key={"pk": {"S": f"digest#{self.account}#{day}"}})


def _api_name(operation: str) -> str:
    return "".join(part.capitalize() for part in operation.split("_"))


def _entry(bucket: str, item: Mapping[str, Any]) -> LedgerEntry:
    def text(name: str) -> str | None:
        value = item.get(name, {}).get("S")
        return value if value else None

    # An unreadable signature (not JSON, not a list of strings) reads as none: the bucket is news again.
    stored = text("signature")
    try:
        loaded: object = json.loads(stored or "[]")
    except ValueError:
        loaded = None
    readable = isinstance(loaded, list) and all(isinstance(token, str) for token in loaded)
    tokens: tuple[str, ...] = tuple(loaded) if readable and isinstance(loaded, list) else ()
    return LedgerEntry(
        bucket=bucket,
        signature=tokens,
        status=text("status") or "unknown",
        severity=text("severity") or "medium",
        region=text("region"),
        alerted_at=text("alerted_at"),
        updated_at=text("updated_at"),
        source=text("source") or "sweep",
        subject=text("subject"),
        opened_at=text("opened_at"),
        closed_at=text("closed_at"),
        stored_signature=None if readable else stored,
    )


def _item(key: dict[str, Any], entry: LedgerEntry) -> dict[str, Any]:
    item = dict(key)
    item["signature"] = {"S": entry.raw_signature}
    for name in ENTRY_FIELDS:
        value = getattr(entry, name)
        if value:
            item[name] = {"S": value}
    return item


def record_published(
    table: str,
    account: str,
    alerts: Iterable[Mapping[str, Any]],
    now: datetime,
    region: str | None = None,
    review_queue: str | None = None,
) -> list[CallFailure]:
    """The real-time hook: record the exposures its published alerts reported, so the sweep stays quiet.

    Call after the alerts went out (``alerts`` are :class:`handlers.response.alert.Alert` dicts); it makes
    one ``dynamodb:UpdateItem`` per recorded exposure, which the response role has. Only
    confirmed bucket exposures that are not approved exceptions are recorded. Best effort:
    a failure only risks one repeated alert from the next sweep, so it is returned, not raised.

    The window opens at the event's time. When our remediation closed a public bucket, the
    closed window goes to the exposure review (``review_queue``) and the item is marked so;
    if that send fails, the window stays open and the sweep sends it when it finds the bucket closed.
    """
    ledger = ExposureLedger(table, account, region)
    failures: list[CallFailure] = []
    for alert in alerts:
        payload = alert.get("payload") or {}
        finding = payload.get("finding") or {}
        exposure = payload.get("exposure") or {}
        bucket = finding.get("bucket")
        if (
            not bucket
            or finding.get("account") not in (None, account)
            or exposure.get("status") not in EXPOSED_STATUSES
            or (payload.get("approval") or {}).get("approved")
        ):
            continue
        tokens = signature(cast(Exposure, exposure))  # an exposed status: assess_bucket's Exposure
        try:
            # One UpdateItem, no read: the response function's role already has it
            # (handlers/response/permissions.py).
            ledger.record(
                bucket,
                tokens,
                UNCONDITIONAL,
                status=exposure["status"],
                severity=str(payload.get("severity") or "high"),
                region=finding.get("region"),
                now=now,
                source="realtime",
                subject=alert.get("subject"),
                alerted=True,
                opened_at=event_time(finding.get("eventTime")),
            )
            closed = (payload.get("remediation") or {}).get("status") == "applied"
            if review_queue and closed and exposure["status"] == "public-now":
                failure = request_closed_review(
                    ledger, bucket, finding.get("region"), str(payload.get("checkedAt") or _stamp(now)),
                    review_queue, fallback_start=event_time(finding.get("eventTime")),
                )  # fmt: skip
                if failure:
                    failures.append(failure)
        except LedgerUnavailable as exc:
            log_decision_at(log, logging.WARNING, "ledger-record-failed", bucket=bucket, error=str(exc))
            failures.append(exc.failure)
    return failures


_EVENT_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def event_time(value: object) -> str | None:
    """A record's ``eventTime`` when it has CloudTrail's exact form; anything else is not a window start."""
    return value if isinstance(value, str) and _EVENT_TIME.fullmatch(value) else None


def request_closed_review(
    ledger: ExposureLedger,
    bucket: str,
    region: str | None,
    closed_at: str,
    queue_url: str,
    *,
    entry: LedgerEntry | None = None,
    fallback_start: str | None = None,
) -> CallFailure | None:
    """Send the closed window of ``bucket`` to the review, then mark it closed in the ledger.

    Reads the item for the window's start unless ``entry`` is given. Returns the failed call
    (the window then stays open, so a later look sends it again); raises :class:`LedgerUnavailable`.
    """
    current = entry if entry is not None else ledger.get(bucket)
    if current is not None and (current.closed_at or current.status != "public-now"):
        return None  # already sent, or never public (held back by BPA): nothing to review
    start = (current.window_start if current else None) or fallback_start or closed_at
    body = review_request(
        account=ledger.account,
        region=region or (current.region if current else None),
        bucket=bucket,
        start=start,
        end=closed_at,
        trigger="closed",
        severity=current.severity if current else "high",
        subject=current.subject if current else None,
    )
    failure = send_review(queue_url, body)
    if failure:
        log_decision_at(log, logging.WARNING, "review-request-failed", bucket=bucket, error=failure)
        return failure
    log_decision_at(log, logging.INFO, "review-requested", bucket=bucket, **{"from": start, "to": closed_at})
    ledger.close_window(bucket, closed_at)
    return None
