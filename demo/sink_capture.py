"""What reached the other sinks in a pass: chat cards, bus events and Security Hub findings.

The chat topic gets an SQS queue (as Amazon Q Developer's subscription would take it), the
default bus a rule of the kind a user writes (``source`` + ``detail-type``) with an SQS target,
and Security Hub is read back from the emulator (moto keeps imported findings; it lacks
``BatchUpdateFindings``, which the function's container answers in AWS's documented shape:
see ``demo/lambda_worker.py``). moto also lets an import overwrite ``Workflow``, so the statuses
counted are those of each finding's last import, not AWS's.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from demo.emulator import MotoServer
from handlers.response.sinks import EVENT_DETAIL_TYPE, EVENT_SOURCE

RULE_NAME = "demo-exposure-decisions"


@dataclass
class SinkCounts:
    """One pass's deliveries to the other sinks."""

    chat: int = 0
    events: int = 0
    findings: int = 0  # distinct Security Hub findings in the emulator
    workflow: Counter[str] = field(default_factory=Counter)
    chat_titles: list[str] = field(default_factory=list)
    chat_configured: bool = False
    hub_configured: bool = False


class SinkCapture:
    """Capture queues for the chat topic and the default bus of a deployment's home region."""

    def __init__(
        self, server: MotoServer, region: str, chat_topic_arn: str | None, name: str, security_hub: bool
    ) -> None:
        self.server, self.region, self.security_hub = server, region, security_hub
        sqs = server.client("sqs", region)
        self.chat_queue: str | None = None
        if chat_topic_arn:
            self.chat_queue = sqs.create_queue(QueueName=f"{name}-demo-chat-capture")["QueueUrl"]
            server.client("sns", region).subscribe(
                TopicArn=chat_topic_arn,
                Protocol="sqs",
                Endpoint=self._arn(self.chat_queue),
                Attributes={"RawMessageDelivery": "true"},
            )
        self.event_queue = sqs.create_queue(QueueName=f"{name}-demo-event-capture")["QueueUrl"]
        events = server.client("events", region)
        events.put_rule(
            Name=RULE_NAME,
            EventPattern=json.dumps({"source": [EVENT_SOURCE], "detail-type": [EVENT_DETAIL_TYPE]}),
        )
        events.put_targets(Rule=RULE_NAME, Targets=[{"Id": "capture", "Arn": self._arn(self.event_queue)}])

    def _arn(self, url: str) -> str:
        sqs = self.server.client("sqs", self.region)
        return str(
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        )

    def _drain(self, url: str | None) -> list[dict[str, Any]]:
        if url is None:
            return []
        sqs, found = self.server.client("sqs", self.region), []
        while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            for message in batch:
                found.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return found

    def reset(self) -> None:
        """Forget what earlier passes left in the queues."""
        self._drain(self.chat_queue)
        self._drain(self.event_queue)

    def collect(self) -> SinkCounts:
        chats = self._drain(self.chat_queue)
        counts = SinkCounts(chat=len(chats), events=len(self._drain(self.event_queue)))
        counts.chat_configured, counts.hub_configured = self.chat_queue is not None, self.security_hub
        counts.chat_titles = [str(c.get("content", {}).get("title", "")) for c in chats[:1]]
        hub = self.server.client("securityhub", self.region)
        findings: list[dict[str, Any]] = []
        request: dict[str, Any] = {"MaxResults": 100}
        while True:
            page = hub.get_findings(**request)
            findings += page.get("Findings", [])
            if not page.get("NextToken"):
                break
            request["NextToken"] = page["NextToken"]
        counts.findings = len({f["Id"] for f in findings})
        counts.workflow = Counter(str(f.get("Workflow", {}).get("Status", "NEW")) for f in findings)
        return counts
