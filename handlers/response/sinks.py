"""Where each decision goes besides the alert topic: Security Hub, the chat topic, the event bus.

``deliver`` sends one built alert to every sink it still owes. The alert topic comes first; the
others follow, each on its own, so one failing sink neither stops the others nor re-sends to
those that took it. What failed is returned by name, so the caller stores the alert with just
those sinks for its retry (:mod:`handlers.response.function`): nothing is lost, nothing is sent twice.

- ``security-hub``: the ASFF finding (:mod:`handlers.response.security_hub`).
- ``chat``: an Amazon Q Developer (AWS Chatbot) custom notification on the chat topic, which
  Slack and Teams channels render natively. Every event-derived value in it is one safe line
  (:func:`handlers.detection.safe_text.inline`): no mention, link or markdown syntax survives.
- ``events``: the alert's JSON payload as a custom event on the default bus
  (``source: s3-exposure-detector``, ``detail-type: S3 Exposure Decision``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from handlers.detection.safe_text import checked_bucket, inline
from handlers.response import alert as alerts
from handlers.response import aws_clients, security_hub
from handlers.response.response_config import Settings

log = logging.getLogger("handlers.response.sinks")
EVENT_SOURCE = "s3-exposure-detector"
EVENT_DETAIL_TYPE = "S3 Exposure Decision"
TOPIC, SECURITY_HUB, CHAT, EVENTS = "topic", "security-hub", "chat", "events"
ALL_SINKS = (TOPIC, SECURITY_HUB, CHAT, EVENTS)
# Amazon Q Developer custom notifications: the documented caps on title and description.
CHAT_TITLE_MAX = 250
CHAT_DESCRIPTION_MAX = 3000
CHAT_STEPS_MAX = 5


@dataclass
class Delivery:
    """What happened to one alert: the topic's message id, and the sinks that did not take it."""

    message_id: str | None = None
    failed: list[str] | None = None
    errors: dict[str, str] | None = None


def enabled(settings: Settings) -> tuple[str, ...]:
    """The sinks this stack is configured with, the topic first."""
    return tuple(
        name
        for name, on in (
            (TOPIC, True),
            (SECURITY_HUB, settings.security_hub),
            (CHAT, bool(settings.chat_topic_arn)),
            (EVENTS, settings.decision_events),
        )
        if on
    )


def owed(alert: Mapping[str, Any], settings: Settings) -> tuple[str, ...]:
    """The sinks ``alert`` still owes: those a stored alert lists (and are still enabled), else all."""
    wanted = alert.get("sinks")
    configured = enabled(settings)
    if not isinstance(wanted, list):
        return configured
    return tuple(name for name in configured if name in wanted)


def deliver(
    alert: alerts.Alert,
    settings: Settings,
    *,
    region: str | None,
    sinks: Sequence[str] | None = None,
) -> Delivery:
    """Send ``alert`` to ``sinks`` (default: those it owes); never raises.

    ``region``: where the Security Hub finding and the event go (the function's own region).
    """
    result = Delivery(failed=[], errors={})
    for name in sinks if sinks is not None else owed(alert, settings):
        try:
            if name == TOPIC:
                result.message_id = alerts.publish(alert, settings.alert_topic_arn, settings.topic_region)
            elif name == SECURITY_HUB:
                security_hub.report(
                    alert["payload"], region=_home(region, settings), account=settings.expected_account_id
                )
            elif name == CHAT and settings.chat_topic_arn:
                publish_chat(alert, settings.chat_topic_arn)
            elif name == EVENTS:
                put_event(alert, _home(region, settings))
        except Exception as exc:  # any failure: this sink is owed again on the retry
            assert result.failed is not None and result.errors is not None
            result.failed.append(name)
            result.errors[name] = f"{type(exc).__name__}: {exc}"[:300]
    return result


def _home(region: str | None, settings: Settings) -> str:
    return region or settings.topic_region


# ---- chat ---------------------------------------------------------------------------------------


def chat_message(alert: Mapping[str, Any]) -> dict[str, Any]:
    """An Amazon Q Developer custom notification for ``alert`` (version 1.0, ``source: custom``)."""
    payload = _mapping(alert.get("payload"))
    finding = _mapping(payload.get("finding"))
    exposure = _mapping(payload.get("exposure"))
    remediation = _mapping(payload.get("remediation"))
    history = _mapping(payload.get("actorHistory"))
    severity = inline(payload.get("severity"), limit=16)
    facts = [
        ("Severity", severity.upper()),
        ("Verdict", inline(finding.get("verdict"), limit=32)),
        ("Bucket", inline(finding.get("bucket"), limit=80)),
        ("Object", inline(finding.get("key"), limit=120) if finding.get("key") else None),
        ("Call", inline(finding.get("eventName"), limit=64)),
        ("Actor", inline(finding.get("actor"), limit=160)),
        ("Source IP", inline(finding.get("sourceIPAddress"), limit=64)),
        ("Exposure now", inline(exposure.get("status"), limit=32)),
        ("Remediation", inline(remediation.get("status"), limit=32)),
        ("Done this before", inline(history.get("verdict"), limit=32) if history else None),
    ]
    lines = [f"*{label}:* {value}" for label, value in facts if value is not None]
    reasons = found if isinstance(found := finding.get("reasons"), list) else []
    lines += [f"• {inline(r, limit=300)}" for r in reasons[:3]]
    description = "\n".join(lines)
    steps = []
    if remediation.get("status") == "applied" and isinstance(remediation.get("undo"), str):
        steps.append(
            f"Closed with Block Public Access. If it was intended, undo: {_code(remediation['undo'])}"
        )
    elif isinstance(remediation.get("fix"), str):
        steps.append(f"Close it: {_code(remediation['fix'])}")
    links = _mapping(payload.get("links"))
    for label, key in (("CloudTrail event", "cloudtrailEvent"), ("Bucket permissions", "bucket")):
        url = links.get(key)
        if isinstance(url, str) and url.startswith("https://") and " " not in url:
            steps.append(f"{label}: {url}")  # our own console links, built from checked values
    keywords = [
        k
        for k in (
            inline(payload.get("severity"), limit=16),
            inline(finding.get("verdict"), limit=32),
            inline(_mapping(payload.get("account")).get("name"), limit=64),
        )
        if k and k != "-"
    ]
    title = inline(alert.get("subject") or payload.get("subject"), limit=CHAT_TITLE_MAX - 20)
    return {
        "version": "1.0",
        "source": "custom",
        "id": inline(finding.get("eventID"), limit=128),
        "content": {
            "textType": "client-markdown",
            "title": title,
            "description": description[:CHAT_DESCRIPTION_MAX],
            "nextSteps": steps[:CHAT_STEPS_MAX],
            "keywords": keywords,
        },
        "metadata": {
            "threadId": inline(finding.get("bucket") or finding.get("eventName"), limit=128),
            "summary": title,
            "eventType": EVENT_DETAIL_TYPE,
        },
    }


def _code(command: str) -> str:
    """A command in a code span; commands are ours (checked names), still made one safe line."""
    return "`" + inline(command, limit=600).replace("`", "'") + "`"


def publish_chat(alert: Mapping[str, Any], topic_arn: str) -> str:
    sns = aws_clients.client("sns", topic_arn.split(":")[3])
    response = sns.publish(TopicArn=topic_arn, Message=json.dumps(chat_message(alert), ensure_ascii=False))
    return str(response.get("MessageId", ""))


# ---- the event bus ------------------------------------------------------------------------------


def event_entry(alert: alerts.Alert, region: str) -> dict[str, Any]:
    """The ``PutEvents`` entry: the payload exactly as the topic's JSON subscribers get it.

    That payload already fits SNS's 256 KiB with several copies of it, so it fits the bus's
    256 KiB entry too.
    """
    message = json.loads(alerts.sns_message(alert)["Message"])
    detail = message[alerts.JSON_PROTOCOLS[0]]
    payload = json.loads(detail)
    bucket = checked_bucket(_mapping(payload.get("finding")).get("bucket"))
    entry: dict[str, Any] = {
        "Source": EVENT_SOURCE,
        "DetailType": EVENT_DETAIL_TYPE,
        "Detail": detail,
        "EventBusName": "default",
    }
    if bucket:  # the ARN only for a valid bucket name
        entry["Resources"] = [f"arn:{security_hub.partition_of(region)}:s3:::{bucket}"]
    return entry


def put_event(alert: alerts.Alert, region: str) -> str:
    events = aws_clients.client("events", region)
    response = events.put_events(Entries=[event_entry(alert, region)])
    entries = response.get("Entries") or [{}]
    if response.get("FailedEntryCount") or entries[0].get("ErrorCode"):
        raise RuntimeError(
            f"PutEvents refused the decision: {entries[0].get('ErrorCode')}: {entries[0].get('ErrorMessage')}"
        )
    return str(entries[0].get("EventId", ""))


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
