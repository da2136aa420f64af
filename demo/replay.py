"""Replay the labelled dataset through the stack as deployed in the emulator.

Per event: reset the emulator's S3 state, make the API call the record captures
(:mod:`demo.replay_state`), route the event with the rules read back from the emulator,
run the deployed function's code once per delivering rule (:mod:`demo.lambda_runtime`)
with IAM enforcement on and the role's permissions (:mod:`demo.role_scope`), then read
the alerts from an SQS queue subscribed to the deployed topic and the bucket's Block
Public Access state. :func:`problems` says what in a pass does not hold.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from demo import deployed, exposure_answers
from demo.dataset_loader import NEGATIVE_VERDICTS, POSITIVE_VERDICTS, Case, load_cases  # noqa: F401
from demo.emulator import HarnessClients, MotoServer
from demo.lambda_runtime import Container, Invocation, deployed_package, extract, runtime_environment
from demo.policy_documents import policy_document, public_read_policy
from demo.replay_state import replay as replay_state
from demo.role_scope import twin_role_credentials
from demo.sink_capture import SinkCapture, SinkCounts
from handlers.detection.classify import classify
from handlers.detection.event_patterns import envelope
from handlers.detection.records import account_id, as_text, bucket_name, client_kind
from handlers.detection.rules.detector_context import from_environment, key_id_of
from handlers.detection.s3_terms import BPA_FLAGS
from handlers.response.remediation import NEEDS_CLOSING

ALL_ON = "4/4 on"
Say = Callable[[str], None]


@dataclass
class Deployment:
    """What the harness read back from the emulator after ``terraform apply``."""

    account_id: str
    home_region: str
    rules: list[deployed.DeployedRule]
    function: deployed.DeployedFunction
    topic_arn: str
    package_dir: Path
    stack_buckets: frozenset[str]
    capture_queue_url: str
    capture_subscription_arn: str
    review_function: deployed.DeployedFunction | None = None  # the exposure review, when deployed
    sinks: SinkCapture | None = None  # the chat topic's and the default bus's capture queues


@dataclass
class EventRow:
    """One dataset event's journey through the deployed stack."""

    case_id: str
    event_name: str
    form: str
    label: str
    routes: list[str] = field(default_factory=list)
    state: str = ""
    verdict: str = "none"
    severity: str = "-"
    remediation: str = "-"
    exposure: str = "-"
    scope: str = "-"
    bpa_before: str = "-"
    bpa_after: str = "-"
    subject: str = ""
    alerts: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    denied: list[str] = field(default_factory=list)
    t_event: float = 0.0
    t_alert: float | None = None
    t_remediation: float | None = None
    in_account: bool = True
    approved: bool = False  # an exception the function must never close
    history: str = "-"  # the alert's actor-history verdict: first-time | seen-before | unknown
    trusted: bool = False
    review: str = "-"  # the follow-up's review verdict (read, no-outside-access, no-evidence, ...)
    review_summary: str = ""
    review_expected: dict[str, int] = field(default_factory=dict)
    review_report: dict[str, Any] = field(default_factory=dict)


@dataclass
class PassResult:
    """Every row of one pass, in dataset order."""

    mode: str
    rows: list[EventRow]
    seconds: float = 0.0
    sinks: SinkCounts | None = None


def read_deployment(
    server: MotoServer,
    account_id_: str,
    name: str,
    regions: tuple[str, ...],
    stack_dir: Path,
    topic_arn: str,
    workdir: Path,
) -> Deployment:
    """Read the stack back from the emulator and prepare the capture queue and the package."""
    clients = _Clients(server)
    rules = deployed.read_rules(clients, regions, f"{name}-")
    arns = deployed.function_arns(rules)
    if len(arns) != 1:
        raise RuntimeError(f"expected the rules to target exactly one function, found {arns or 'none'}")
    function = deployed.read_function(clients, arns[0])
    package_dir = extract(deployed_package(stack_dir, function), workdir / "package")
    review = None
    if function.environment.get("REVIEW_QUEUE_URL"):
        review_arn = arns[0].replace(function.name, f"{name}-s3-exposure-review")
        review = deployed.read_function(clients, review_arn)
    s3 = server.client("s3", regions[0])
    exposure_answers.prepare_log_bucket(s3)  # kept across resets, like the stack's own buckets
    stack_buckets = frozenset(b["Name"] for b in s3.list_buckets().get("Buckets", []))
    queue_url, subscription = subscribe_capture(server, topic_arn, f"{name}-demo-alert-capture")
    return Deployment(
        account_id_,
        regions[0],
        rules,
        function,
        topic_arn,
        package_dir,
        stack_buckets,
        queue_url,
        subscription,
        review,
        SinkCapture(
            server,
            regions[0],
            function.environment.get("CHAT_TOPIC_ARN"),
            name,
            function.environment.get("SECURITY_HUB") == "true",
        ),
    )


def subscribe_capture(server: MotoServer, topic_arn: str, queue_name: str) -> tuple[str, str]:
    """An SQS queue subscribed to the alert topic (what a SIEM or chat relay would be)."""
    region = topic_arn.split(":")[3]
    sqs = server.client("sqs", region)
    queue_url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    policy = policy_document(
        {
            "Effect": "Allow",
            "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
        }
    )
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})
    subscription = server.client("sns", region).subscribe(
        TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, ReturnSubscriptionArn=True
    )["SubscriptionArn"]
    return queue_url, subscription


class _Clients:
    """``deployed.ClientFactory`` over the harness's emulator clients."""

    def __init__(self, server: MotoServer) -> None:
        self.server = server

    def client(self, service: str, region: str) -> Any:
        return self.server.client(service, region)


def run_pass(
    server: MotoServer,
    deployment: Deployment,
    cases: Iterable[Case],
    mode: str,
    workdir: Path,
    say: Say = print,
    *,
    variables: dict[str, str] | None = None,
    policy: dict[str, Any] | None = None,
    rules: list[deployed.DeployedRule] | None = None,
) -> PassResult:
    """Replay ``cases`` with the function's ``REMEDIATION_MODE`` set to ``mode``.

    ``variables``, ``policy`` and ``rules`` replace what was read back (negative controls:
    a variable removed, an action removed, a rule removed); by default the deployment's own.
    """
    cases = list(cases)
    started = time.monotonic()
    if variables is None:
        env_vars = {**deployment.function.environment, "REMEDIATION_MODE": mode}
    else:
        env_vars = dict(variables)  # exactly as given, even without REMEDIATION_MODE
    clear_idempotency(server, deployment, env_vars.get("IDEMPOTENCY_TABLE"))
    reset_state(server, deployment, account_level=True)
    drain(server, deployment)
    if deployment.sinks is not None:
        deployment.sinks.reset()
    credentials = twin_role_credentials(
        server, deployment.function.role_arn, policy, session_name=f"demo-{mode}"
    )
    env = runtime_environment(deployment.function, credentials, server.url, env_vars)
    now = datetime.now(UTC)
    history = exposure_answers.write_history(
        workdir / f"history-{mode}.json",
        exposure_answers.history_records([localise(c, deployment) for c in load_cases()], now),
    )
    container = Container(
        deployment.package_dir,
        env,
        deployment.function.timeout_seconds,
        workdir / "lambda.log",
        history_file=history,
    )
    reviewer = _review_container(server, deployment, workdir, mode) if deployment.review_function else None
    rows: list[EventRow] = []
    last_beat = time.monotonic()
    try:
        for index, case in enumerate(cases, 1):
            rows.append(
                replay_one(server, deployment, case, container, rules or deployment.rules, mode, reviewer)
            )
            if time.monotonic() - last_beat >= 5:
                say(f"  {mode}: {index}/{len(cases)} events replayed")
                last_beat = time.monotonic()
    finally:
        container.stop()
        if reviewer is not None:
            reviewer.stop()
    sinks = deployment.sinks.collect() if deployment.sinks is not None else None
    return PassResult(mode, rows, time.monotonic() - started, sinks)


def _review_container(server: MotoServer, deployment: Deployment, workdir: Path, mode: str) -> Container:
    """The deployed review function's code in its own warm container, with its role's credentials."""
    review = deployment.review_function
    assert review is not None
    credentials = twin_role_credentials(server, review.role_arn, None, session_name=f"demo-review-{mode}")
    env = runtime_environment(review, credentials, server.url)
    return Container(deployment.package_dir, env, review.timeout_seconds, workdir / "review.log")


def replay_one(
    server: MotoServer,
    deployment: Deployment,
    case: Case,
    container: Container,
    rules: list[deployed.DeployedRule],
    mode: str,
    reviewer: Container | None = None,
) -> EventRow:
    """One event: state, routing, invocations, alerts, the exposure review, final Block Public Access."""
    record = localise(case, deployment)
    # Replayed now: the actor's history and the exposure window are read relative to this time.
    record["eventTime"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    row = EventRow(
        case.id,
        as_text(record.get("eventName")) or "?",
        client_kind(as_text(record.get("userAgent"))),
        case.expect["verdict"],
        in_account=account_id(record) == deployment.account_id,
    )
    reset_state(server, deployment, account_level=False)  # every event starts without the last one's buckets
    region = as_text(record.get("awsRegion")) or deployment.home_region
    try:
        made = replay_state(record, HarnessClients(server, region))
        row.state = "+".join(made) if made else "nothing to replay"
    except ClientError as exc:  # the emulator refused the recorded call: the state stays as it was
        row.state = f"skipped ({exc.response.get('Error', {}).get('Code', 'error')})"
    findings = classify(record, from_environment(deployment.function.environment))
    target_bucket = (findings[0]["bucket"] if findings else None) or bucket_name(record)
    scope = findings[0]["scope"] if findings else "bucket"
    logging_on = False
    if reviewer is not None and target_bucket and scope in ("bucket", "object"):
        logging_on = exposure_answers.enable_logging(server.client("s3", region), target_bucket)
    if mode != "enforce":  # the other modes must leave it as the replay made it
        row.bpa_before = read_bpa(server, deployment, scope, target_bucket, region)
    row.t_event = time.time()
    event = envelope(record)
    row.routes = deployed.route(event, rules, deployment.function.arn)
    invocations: list[Invocation] = []
    for _ in row.routes:
        server.enforce_iam(True)
        try:
            invocations.append(container.invoke(event))
        finally:
            server.enforce_iam(False)
    for invocation in invocations:
        if invocation.error:
            row.errors.append(f"{invocation.error.get('type')}: {invocation.error.get('message')}")
            row.outcomes.append("error")
        else:
            row.outcomes.append(str((invocation.result or {}).get("outcome", "?")))
        row.denied += invocation.denied
        for call in invocation.calls:
            if (
                call["operation"] == "PutPublicAccessBlock"
                and not call.get("error")
                and row.t_remediation is None
            ):
                row.t_remediation = call["at"]
    for message in drain(server, deployment) if row.routes else []:
        payload, subject, sent = message
        row.alerts.append(payload)
        if row.t_alert is None:
            row.t_alert = sent
            row.subject = subject
    if reviewer is not None and deployment.function.environment.get("REVIEW_QUEUE_URL"):
        _review(server, deployment, reviewer, row, logging_on)
    if row.alerts:
        first = row.alerts[0]
        history = first.get("actorHistory") or {}
        row.history = str(history.get("verdict") or "-")
        row.trusted = bool(history.get("trusted"))
        finding = first.get("finding") or {}
        row.verdict = str(finding.get("verdict", "?"))
        row.severity = str(first.get("severity", "?"))
        row.remediation = str((first.get("remediation") or {}).get("status", "?"))
        row.exposure = str((first.get("exposure") or {}).get("status", "?"))
        row.scope = str(finding.get("scope", scope))
        row.approved = bool((first.get("approval") or {}).get("approved"))
        target_bucket = finding.get("bucket") or target_bucket
    elif row.errors:
        row.verdict = "error"
    row.bpa_after = read_bpa(server, deployment, row.scope if row.alerts else scope, target_bucket, region)
    if scope == "account" or row.scope == "account":
        reset_state(server, deployment, account_level=True)
    return row


def _review(
    server: MotoServer, deployment: Deployment, reviewer: Container, row: EventRow, logging_on: bool
) -> None:
    """Hand each review request the function sent to the review function; read its follow-up alert.

    ``logging_on``: the bucket logs to the demo's log bucket (one in another region cannot: S3
    delivers access logs within a region), so its window gets a log object and its review must
    count it exactly; otherwise the review must say it cannot tell.
    """
    queue_url = deployment.function.environment["REVIEW_QUEUE_URL"]
    sqs = server.client("sqs", deployment.home_region)
    s3 = server.client("s3", deployment.home_region)
    for record in exposure_answers.take_review_requests(sqs, queue_url):
        window = exposure_answers.window_of(record["body"])
        bucket = str(json.loads(record["body"]).get("bucket") or "")
        # Each event starts afresh: an earlier event's log object or review of a bucket of the same
        # name (replayed within the same second) must not count here.
        exposure_answers.forget_reviews(
            s3,
            server.client("dynamodb", deployment.function.region),
            deployment.function.environment.get("IDEMPOTENCY_TABLE"),
            deployment.account_id,
            bucket,
        )
        if window and bucket and logging_on:
            row.review_expected = exposure_answers.write_access_logs(
                s3, bucket, deployment.account_id, *window
            )
        elif window and bucket:
            row.review_expected = {"noEvidence": 1}
        server.enforce_iam(True)  # the review role's own policy, as for the response function
        try:
            invocation = reviewer.invoke({"Records": [record]})
        finally:
            server.enforce_iam(False)
        if invocation.error:
            row.errors.append(f"review {invocation.error.get('type')}: {invocation.error.get('message')}")
        row.denied += [f"review {call}" for call in invocation.denied]
        for payload, subject, _ in drain(server, deployment):
            report = payload.get("review") or {}
            row.review = str(report.get("verdict") or "?")
            row.review_report = report
            row.review_summary = subject


def localise(case: Case, deployment: Deployment) -> dict[str, Any]:
    """The case's record as it would be recorded against this deployment.

    Cases about the detector's own trail name the trail, bucket and keys of the stack they were
    written for (their ``context``); this deployment's differ (moto makes up key ids). Every
    occurrence is replaced with what was deployed, and so is the recorded account id (events of
    other accounts are refused; :func:`forged_events` shows that). A case labelled under another
    approval tag gets the deployed approval tag instead.
    """
    record = copy.deepcopy(case.record)
    own = from_environment(deployment.function.environment)
    pairs: dict[str, str] = {}
    for name in ("trail_name", "trail_bucket", "trail_key_arn", "detector_key_arn"):
        written, deployed_value = getattr(case.detector, name), getattr(own, name)
        if written and deployed_value:
            pairs[written] = deployed_value
            if name.endswith("key_arn"):
                pairs[key_id_of(written)] = key_id_of(deployed_value)
    written_tag, deployed_tag = case.detector.approval_tag, own.approval_tag
    if written_tag != deployed_tag:
        # A case labelled under another approval tag: swap the two keys, so its approval tag becomes
        # the deployed one and a deployed-key tag in it stays an ordinary tag, as labelled.
        swap = {written_tag: deployed_tag, deployed_tag: written_tag}
        pattern = re.compile("|".join(re.escape(tag) for tag in sorted(swap, key=len, reverse=True)))
        record = json.loads(pattern.sub(lambda match: swap[match.group(0)], json.dumps(record)))
    recorded_account = account_id(record)
    text = json.dumps(record)
    for written in sorted(pairs, key=len, reverse=True):  # ARNs before the key ids inside them
        text = text.replace(written, pairs[written])
    # Every case is replayed as this account's own: the function refuses events of other
    # accounts (handlers.response.provenance), which the forged-event pass shows on its own.
    if recorded_account and recorded_account != deployment.account_id:
        text = text.replace(recorded_account, deployment.account_id)
    return json.loads(text)


def reset_state(server: MotoServer, deployment: Deployment, account_level: bool) -> None:
    """Remove every bucket the replay made and, when ``account_level``, the account's Block Public Access."""
    s3 = server.client("s3", deployment.home_region)
    for bucket in s3.list_buckets().get("Buckets", []):
        name = bucket["Name"]
        if name in deployment.stack_buckets:
            continue
        try:
            s3.delete_bucket(Bucket=name)
        except ClientError:  # not empty: objects first
            objects = s3.list_objects_v2(Bucket=name).get("Contents", [])
            if objects:
                s3.delete_objects(Bucket=name, Delete={"Objects": [{"Key": o["Key"]} for o in objects]})
            s3.delete_bucket(Bucket=name)
    if account_level:
        with contextlib.suppress(ClientError):  # nothing set is fine
            server.client("s3control", deployment.home_region).delete_public_access_block(
                AccountId=deployment.account_id
            )


def read_bpa(server: MotoServer, deployment: Deployment, scope: str, bucket: str | None, region: str) -> str:
    """The Block Public Access the finding's scope answers to: ``4/4 on``, ``2/4 on``, ``none``, ``-``."""
    try:
        if scope == "account":
            config = server.client("s3control", region).get_public_access_block(
                AccountId=deployment.account_id
            )
        elif scope in ("bucket", "object") and bucket:
            config = server.client("s3", region).get_public_access_block(Bucket=bucket)
        else:
            return "-"
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        return "none" if code == "NoSuchPublicAccessBlockConfiguration" else "-"
    flags = config["PublicAccessBlockConfiguration"]
    return f"{sum(bool(flags.get(f)) for f in BPA_FLAGS)}/4 on"


def drain(server: MotoServer, deployment: Deployment) -> list[tuple[dict[str, Any], str, float]]:
    """Every alert waiting in the capture queue: (payload, subject, time SNS published it)."""
    sqs = server.client("sqs", deployment.topic_arn.split(":")[3])
    found: list[tuple[dict[str, Any], str, float]] = []
    while True:
        batch = sqs.receive_message(QueueUrl=deployment.capture_queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        if not batch:
            return found
        for message in batch:
            body = json.loads(message["Body"])
            try:
                payload = json.loads(body.get("Message", "{}"))
            except ValueError:
                payload = {"text": body.get("Message")}
            sent = datetime.fromisoformat(body["Timestamp"]).timestamp() if body.get("Timestamp") else 0.0
            found.append((payload, str(body.get("Subject", "")), sent))
            sqs.delete_message(QueueUrl=deployment.capture_queue_url, ReceiptHandle=message["ReceiptHandle"])


def clear_idempotency(server: MotoServer, deployment: Deployment, table: str | None) -> None:
    """Forget the events a previous pass handled (each pass replays the same eventIDs)."""
    if not table:
        return
    dynamodb = server.client("dynamodb", deployment.function.region)
    try:
        items = dynamodb.scan(TableName=table, ProjectionExpression="pk").get("Items", [])
    except ClientError:
        return
    for item in items:
        dynamodb.delete_item(TableName=table, Key={"pk": item["pk"]})


def problems(result: PassResult) -> list[str]:
    """Everything in the pass that does not hold, one line each, naming the case."""
    found: list[str] = []
    for row in result.rows:
        where = f"{result.mode}: {row.case_id}"
        positive = row.label in POSITIVE_VERDICTS
        if positive and not row.routes:
            found.append(f"{where}: no deployed rule routes this {row.label} event")
        for error in row.errors:
            found.append(f"{where}: the function failed: {error}")
        for call in sorted(set(row.denied)):
            found.append(f"{where}: the function's role was refused {call}")
        if positive and row.routes and not row.alerts:
            found.append(f"{where}: no alert arrived on the topic's SQS subscription")
        if row.verdict != row.label:
            found.append(f"{where}: verdict {row.verdict!r}, labelled {row.label!r}")
        if result.mode == "enforce" and row.review_expected.get("noEvidence"):
            if row.review != "no-evidence":
                found.append(f"{where}: exposure review {row.review!r} where no evidence source exists")
        elif result.mode == "enforce" and row.review_expected:
            report = row.review_report
            anonymous = (report.get("anonymous") or {}).get("requests")
            if row.review != "read" or anonymous != row.review_expected["anonymousInWindow"]:
                found.append(
                    f"{where}: exposure review {row.review!r} counted {anonymous} anonymous requests, "
                    f"the logs hold {row.review_expected['anonymousInWindow']} in the window"
                )
        if result.mode == "enforce":
            if row.remediation in ("failed", "unverified"):
                found.append(f"{where}: remediation {row.remediation}")
            closable = (
                row.label in ("public", "weakening")
                and row.scope in ("bucket", "object")
                and row.in_account
                and row.exposure in NEEDS_CLOSING
                and not row.approved  # not the handler's own "skipped": a wrong mode skips too
            )
            if closable and row.bpa_after != ALL_ON:
                found.append(f"{where}: bucket left with Block Public Access {row.bpa_after} in enforce mode")
        elif row.bpa_after != row.bpa_before:
            found.append(
                f"{where}: Block Public Access changed {row.bpa_before} -> {row.bpa_after} in {result.mode}"
            )
    sinks = result.sinks
    if sinks is not None:
        # Every decision that reached the topic reaches the bus, the chat topic and Security Hub.
        alerted = sum(len(r.alerts) for r in result.rows)
        if sinks.events != alerted:
            found.append(f"{result.mode}: {sinks.events} decision events on the bus for {alerted} alerts")
        if sinks.chat_configured and sinks.chat != alerted:
            found.append(f"{result.mode}: {sinks.chat} chat notifications for {alerted} alerts")
        if sinks.hub_configured and alerted and not sinks.findings:
            found.append(f"{result.mode}: no Security Hub finding for {alerted} alerts")
    return found


def latencies(rows: list[EventRow]) -> dict[str, tuple[float, float, int] | None]:
    """p50 and max seconds from event to alert and to remediation, with the sample count."""

    def stats(values: list[float]) -> tuple[float, float, int] | None:
        return (statistics.median(values), max(values), len(values)) if values else None

    return {
        "alert": stats([r.t_alert - r.t_event for r in rows if r.t_alert is not None]),
        "remediation": stats([r.t_remediation - r.t_event for r in rows if r.t_remediation is not None]),
    }


def with_rule_removed(rules: list[deployed.DeployedRule], route: str) -> list[deployed.DeployedRule]:
    """A copy of the deployed rules without the ones named ``*-s3-exposure-<route>`` (negative control)."""
    return [rule for rule in rules if rule.route != route]


# ---- forged events --------------------------------------------------------------------------------


def forged_variants(record: dict[str, Any], deployment: Deployment) -> dict[str, Any]:
    """Events someone holding lambda:InvokeFunction could send instead of EventBridge."""
    good = envelope(record)
    other = "999988887777" if deployment.account_id != "999988887777" else "111122223333"
    return {
        "bare CloudTrail record": record,
        "envelope of another account": {
            **good,
            "account": other,
            "detail": {**record, "recipientAccountId": other},
        },
        "unwatched region": {**good, "region": "ap-south-1", "detail": {**record, "awsRegion": "ap-south-1"}},
        "foreign source": {**good, "source": "custom.attacker"},
    }


def forged_events(server: MotoServer, deployment: Deployment, workdir: Path, say: Say = print) -> list[str]:
    """Invoke the deployed function with forged events: each must be refused before any read or action.

    A public policy really is put on a bucket first, so a function that acted on the forged
    record would read and (in enforce) close it. Returns problems, one line each.
    """
    bucket = "demo-forged-target"
    s3 = server.client("s3", deployment.home_region)
    reset_state(server, deployment, account_level=False)
    s3.create_bucket(Bucket=bucket)
    policy = public_read_policy(bucket)
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    record = {
        "eventVersion": "1.09",
        "eventSource": "s3.amazonaws.com",
        "eventName": "PutBucketPolicy",
        "eventTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "awsRegion": deployment.home_region,
        "eventID": "f0f0f0f0-0000-4000-8000-000000000001",
        "recipientAccountId": deployment.account_id,
        "userIdentity": {"type": "IAMUser", "arn": f"arn:aws:iam::{deployment.account_id}:user/someone-else"},
        "sourceIPAddress": "203.0.113.66",
        "userAgent": "<!channel> <https://evil.example|AWS console>",
        "requestParameters": {"bucketName": bucket, "bucketPolicy": policy},
    }
    env = {**deployment.function.environment, "REMEDIATION_MODE": "enforce"}
    clear_idempotency(server, deployment, env.get("IDEMPOTENCY_TABLE"))
    drain(server, deployment)
    credentials = twin_role_credentials(
        server, deployment.function.role_arn, None, session_name="demo-forged"
    )
    container = Container(
        deployment.package_dir,
        runtime_environment(deployment.function, credentials, server.url, env),
        deployment.function.timeout_seconds,
        workdir / "lambda.log",
    )
    found: list[str] = []
    say(f"  {'forged event':<30} {'outcome':<10} {'S3 calls':>8}  bucket BPA after")
    try:
        for name, event in forged_variants(record, deployment).items():
            invocation = container.invoke(event)
            outcome = str((invocation.result or {}).get("outcome", "error"))
            s3_calls = [c for c in invocation.calls if c["service"] in ("s3", "s3control")]
            bpa = read_bpa(server, deployment, "bucket", bucket, deployment.home_region)
            say(f"  {name:<30} {outcome:<10} {len(s3_calls):>8}  {bpa}")
            if outcome != "rejected" or s3_calls or invocation.error:
                found.append(
                    f"forged {name}: outcome {outcome}, {len(s3_calls)} S3 call(s), {invocation.error}"
                )
    finally:
        container.stop()
    alerts = drain(server, deployment)
    verdicts = [str((payload.get("rejected") or {}).get("reason", "")) for payload, _, _ in alerts]
    say(f"  alerts: {len(alerts)} (one per 15-minute window, however many forged events arrive)")
    if len(alerts) != 1 or not verdicts[0]:
        found.append(f"forged events: expected exactly one refusal alert, got {len(alerts)}")
    s3.delete_bucket_policy(Bucket=bucket)
    s3.delete_bucket(Bucket=bucket)
    return found
