"""The demo's two answers: the actor's history (in the alert) and the exposure review (a follow-up).

The emulator lacks both data sources, so the harness provides them, in AWS's documented shapes:

- **History**: moto does not implement CloudTrail ``LookupEvents``. The function's container
  gets a local fake (:mod:`demo.lookup_events_fake`) seeded from the dataset's own actors: the
  records of the regular actors (the deploy bot, the SSO admin, Terraform CI, the data pipeline)
  are replayed into the past 90 days, so they have history; the others (``mallory``, a web-team
  user, a marketing role) have none, so their alerts say ``first-time``.
- **Access logs**: S3 does not write server access logs in moto. For each bucket the replay
  makes public, the harness turns logging on (to the demo's log bucket, the one
  ``review.log_buckets`` names) and, once the function has closed the bucket, writes the log
  object S3 would have delivered for the window: a few anonymous GETs from outside, the owner's
  own requests, one request for another bucket and one late record after the window.

The review request itself is real: the deployed response function sends it to the deployed
review queue, and the harness hands the message to the deployed review function's code as the
SQS event source mapping would.
"""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from demo.policy_documents import policy_document
from handlers.detection.records import actor

# Actors with history in the seeded LookupEvents (by the end of their ARN); the rest are new.
REGULARS = (
    "user/deploy-bot",
    "jane.doe@acme.example",
    "assumed-role/terraform-ci/",
    "assumed-role/data-pipeline/",
)
LOG_BUCKET = "demo-server-access-logs"
ANONYMOUS_READERS = ("198.51.100.7", "198.51.100.7", "203.0.113.9", "192.0.2.44")


def history_records(records: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """CloudTrail records for the fake LookupEvents: the regulars' calls, spread over 89 days back."""
    history: list[dict[str, Any]] = []
    for index, record in enumerate(records):
        who = actor(record) or ""
        if not any(mark in who for mark in REGULARS):
            continue
        earlier = copy.deepcopy(record)
        days = 3 + (int(hashlib.sha256(str(index).encode()).hexdigest(), 16) % 85)
        earlier["eventTime"] = (now - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
        earlier["eventID"] = str(uuid.UUID(hashlib.md5(f"history-{index}".encode()).hexdigest()))
        history.append(earlier)
    return history


def write_history(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps(records))
    return path


def prepare_log_bucket(s3: Any) -> None:
    """The bucket S3 delivers access logs to, with the policy that lets the logging service write."""
    s3.create_bucket(Bucket=LOG_BUCKET)
    policy = policy_document(
        {
            "Sid": "S3ServerAccessLogsPolicy",
            "Effect": "Allow",
            "Principal": {"Service": "logging.s3.amazonaws.com"},
            "Action": "s3:PutObject",
            "Resource": f"arn:aws:s3:::{LOG_BUCKET}/*",
        }
    )
    s3.put_bucket_policy(Bucket=LOG_BUCKET, Policy=json.dumps(policy))


def enable_logging(s3: Any, bucket: str) -> bool:
    """Turn on server access logging of ``bucket`` into the log bucket (``False``: not possible)."""
    try:
        s3.put_bucket_logging(
            Bucket=bucket,
            BucketLoggingStatus={
                "LoggingEnabled": {"TargetBucket": LOG_BUCKET, "TargetPrefix": f"{bucket}/"}
            },
        )
    except Exception:  # no such bucket (a failed call was replayed), or a name the emulator refuses
        return False
    return True


def _line(owner: str, bucket: str, at: datetime, ip: str, requester: str, operation: str, key: str,
          status: int, sent: int) -> str:  # fmt: skip
    stamp = at.strftime("[%d/%b/%Y:%H:%M:%S +0000]")
    uri = f'"GET /{key} HTTP/1.1"' if operation.startswith("REST.GET") else f'"PUT /{key} HTTP/1.1"'
    request_id = hashlib.sha256(f"{at}{ip}{key}".encode()).hexdigest()[:16].upper()
    return (
        f"{owner} {bucket} {stamp} {ip} {requester} {request_id} {operation} {key} {uri} {status} - "
        f'{sent} {sent} 12 11 "-" "curl/8.5.0" - hostid= SigV4 ECDHE-RSA-AES128-GCM-SHA256 - '
        f"{bucket}.s3.us-east-1.amazonaws.com TLSv1.3 - -"
    )


def write_access_logs(s3: Any, bucket: str, account: str, start: datetime, end: datetime) -> dict[str, int]:
    """The log object S3 would deliver for ``bucket`` over [start, end]; returns what it holds.

    Records: 4 anonymous GETs from 3 IPs (one of them refused with 403), 2 requests by the
    owner's own role, 1 record of another bucket and 1 anonymous GET after the window (late
    delivery is read, but does not count). Keys follow the simple format: prefix + date + id.
    """
    owner = hashlib.sha256(account.encode()).hexdigest()
    start = start.replace(microsecond=0)
    seconds = max(int((end - start).total_seconds()), 0)

    def at(step: int) -> datetime:  # whole seconds inside the window: log times have no fraction
        return start + timedelta(seconds=min(step, seconds))

    own = f"arn:aws:sts::{account}:assumed-role/data-pipeline/botocore-session-1"
    reads = "exports/customers-{}.csv"
    lines = [
        _line(owner, bucket, at(i), ip, "-", "REST.GET.OBJECT", reads.format(i), 403 if i == 3 else 200,
              0 if i == 3 else 2048 * (i + 1))
        for i, ip in enumerate(ANONYMOUS_READERS)
    ]  # fmt: skip
    lines += [
        _line(owner, bucket, at(1), "10.0.0.5", own, "REST.PUT.OBJECT", reads.format(0), 200, 0),
        _line(owner, bucket, at(2), "10.0.0.5", own, "REST.GET.BUCKET", "-", 200, 512),
        _line(owner, "some-other-bucket", at(0), "198.51.100.7", "-", "REST.GET.OBJECT", "x", 200, 10),
        _line(owner, bucket, end + timedelta(minutes=5), "198.51.100.7", "-", "REST.GET.OBJECT",
              reads.format(0), 200, 2048),
    ]  # fmt: skip
    delivered = end  # named by delivery time; within the window, as the review lists no later
    key = f"{bucket}/{delivered.strftime('%Y-%m-%d-%H-%M-%S')}-{uuid.uuid4().hex[:16].upper()}"
    s3.put_object(Bucket=LOG_BUCKET, Key=key, Body=("\n".join(lines) + "\n").encode())
    return {"anonymousInWindow": 4, "anonymousServed": 3, "ips": 3, "internal": 2}


def forget_reviews(s3: Any, dynamodb: Any, table: str | None, account: str, bucket: str) -> None:
    """Remove the log objects and review items an earlier event left for a bucket of this name."""
    listed = s3.list_objects_v2(Bucket=LOG_BUCKET, Prefix=f"{bucket}/").get("Contents", [])
    if listed:
        s3.delete_objects(Bucket=LOG_BUCKET, Delete={"Objects": [{"Key": o["Key"]} for o in listed]})
    if not table:
        return
    items = dynamodb.scan(
        TableName=table,
        FilterExpression="begins_with(pk, :prefix)",
        ExpressionAttributeValues={":prefix": {"S": f"review#{account}#{bucket}#"}},
    ).get("Items", [])
    for item in items:
        dynamodb.delete_item(TableName=table, Key={"pk": item["pk"]})


def take_review_requests(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    """Every review request waiting on the deployed review queue, as SQS event records."""
    records: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            return records
        for message in batch:
            records.append(
                {
                    "messageId": message["MessageId"],
                    "receiptHandle": message["ReceiptHandle"],
                    "body": message["Body"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": queue_arn(queue_url),
                    "attributes": {"ApproximateReceiveCount": "1"},
                }
            )
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def queue_arn(queue_url: str) -> str:
    """``arn:aws:sqs:<region>:<account>:<name>`` of a queue URL (the emulator's or AWS's)."""
    parts = queue_url.rstrip("/").split("/")
    host = parts[2]
    region = host.split(".")[1] if host.startswith("sqs.") else "us-east-1"
    return f"arn:aws:sqs:{region}:{parts[-2]}:{parts[-1]}"


def window_of(body: str) -> tuple[datetime, datetime] | None:
    """The window a review request names (``None`` when it names none the harness can read)."""
    try:
        message = json.loads(body)
        start = datetime.fromisoformat(str(message["from"]).replace("Z", "+00:00"))
        end_text = message.get("to")
        end = datetime.fromisoformat(str(end_text).replace("Z", "+00:00")) if end_text else datetime.now(UTC)
    except (ValueError, KeyError, TypeError):
        return None
    return start, end
