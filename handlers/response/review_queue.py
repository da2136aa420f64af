"""Ask for an exposure review: one SQS message per window, read by :mod:`handlers.review.function`.

The response function sends one when its remediation closes a window; the sweep sends one when
it finds a known exposure closed (or its bucket deleted), and one every run while a window stays
open. The message names the window and the severity the exposure was alerted at; the review
validates every field again (it trusts no message).
"""

from __future__ import annotations

import json
from typing import Any

from handlers.response import aws_clients
from handlers.response.exposure import CallFailure, describe_error

REVIEW_KIND = "exposure-review"
TRIGGERS = ("closed", "hourly")


def review_request(
    *,
    account: str,
    region: str | None,
    bucket: str,
    start: str,
    end: str | None,
    trigger: str,
    severity: str,
    subject: str | None = None,
) -> dict[str, Any]:
    """The message body for one window (``end`` None: still open, review up to now)."""
    if trigger not in TRIGGERS:
        raise ValueError(f"trigger: expected one of {TRIGGERS}, got {trigger!r}")
    body: dict[str, Any] = {
        "kind": REVIEW_KIND,
        "version": 1,
        "account": account,
        "region": region,
        "bucket": bucket,
        "from": start,
        "to": end,
        "trigger": trigger,
        "severity": severity,
    }
    if subject:
        body["subject"] = subject[:200]
    return body


def send_review(queue_url: str, body: dict[str, Any]) -> CallFailure | None:
    """Send one review request; the failure (never raised) lets the caller keep its state to retry."""
    try:
        aws_clients.client("sqs", aws_clients.queue_region(queue_url)).send_message(
            QueueUrl=queue_url, MessageBody=json.dumps(body)
        )
    except Exception as exc:  # any failure: the caller keeps the window open and retries later
        return describe_error("sqs:SendMessage", exc)
    return None
