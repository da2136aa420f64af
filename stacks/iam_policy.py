"""The response and sweep functions' IAM policies, derived from ``handlers/response/permissions.py``.

Pure data (no cdktf): the stack serialises the document, and the least-privilege test
reads it directly. Each statement is scoped to the resource its actions touch:
- bucket reads on every bucket (``arn:<partition>:s3:::*``): which bucket goes public is
  not known in advance; writes there only in ``enforce`` mode, and only in this account;
- the alert topic, its KMS key, the idempotency table, the dead-letter queue and the
  function's own log group by ARN.

Two reads have no resource type in IAM and so take ``Resource: "*"``: ``s3:ListAllMyBuckets``
(the sweep) and ``cloudtrail:LookupEvents`` (the actor history in the alert: it reads the
account's management events, never data).

One justified exception to "no ``*`` resource on a write": ``s3:PutAccountPublicAccessBlock``
(and its read, ``s3:GetAccountPublicAccessBlock``) have no resource type in IAM, so AWS
only accepts ``Resource: "*"`` for them. The write is granted only when the config sets
``remediation.mode = "enforce"`` and ``remediation.allow_account_level = true``, in a
statement whose Sid says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from handlers.response.permissions import (
    group_by_resource,
    iam_actions_by_resource,
    review_calls,
    sweep_iam_actions_by_resource,
)

ACCOUNT_LEVEL_SIDS = frozenset(
    {"AccountBlockPublicAccessRead", "AccountBlockPublicAccessWriteNoResourceType"}
)
# The resources (handlers.response.permissions' names) each function's statements cover.
SWEEP_RESOURCES = frozenset(
    {
        "bucket",
        "listing",
        "account",
        "topic",
        "key",
        "table",
        "queue",
        "review-queue",
        "hub-product",
        "hub",
        "chat-topic",
        "event-bus",
    }
)
REVIEW_RESOURCES = frozenset(
    {"bucket", "log-bucket", "log-object", "trail", "topic", "key", "table", "review-queue"}
)
# Characters IAM resource ARNs can express of an fnmatch glob: '*' and '?' only.
_IAM_GLOB_SAFE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-*?")


@dataclass(frozen=True)
class PolicyTargets:
    """The ARNs the function's statements are scoped to (Terraform references or literals)."""

    partition: str
    account_id: str
    topic_arn: str
    key_arn: str
    table_arn: str
    dead_letter_queue_arn: str
    log_group_arn: str
    review_queue_arn: str | None = None  # the exposure review's queue, when deployed
    sinks: SinkTargets | None = None  # Security Hub, the chat topic, the event bus, when on


@dataclass(frozen=True)
class SinkTargets:
    """Where the optional sinks write (handlers/response/sinks.py): all in the home region."""

    region: str
    security_hub: bool = False
    chat_topic_arn: str | None = None
    decision_events: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        """The sinks on, by handlers.response.permissions' names."""
        on = (
            ("security-hub", self.security_hub),
            ("chat", bool(self.chat_topic_arn)),
            ("events", self.decision_events),
        )
        return tuple(name for name, flag in on if flag)


# BatchUpdateFindings may only set the workflow status (and a note): never severity or types.
_WORKFLOW_ONLY = {
    "StringEquals": {"securityhub:ASFFSyntaxPath/Workflow.Status": ["NEW", "RESOLVED", "SUPPRESSED"]},
    "Null": {
        "securityhub:ASFFSyntaxPath/Severity.Label": "true",
        "securityhub:ASFFSyntaxPath/Types": "true",
        "securityhub:ASFFSyntaxPath/VerificationState": "true",
    },
}


def sink_statements(
    actions: dict[str, list[str]], partition: str, account: str, sinks: SinkTargets | None
) -> list[dict[str, Any]]:
    """The optional sinks' statements, each on its one resource."""
    if sinks is None:
        return []
    region = sinks.region
    hub = f"arn:{partition}:securityhub:{region}:{account}:hub/default"
    return [
        _allow(
            "ImportFindingsToOwnProduct",
            actions.get("hub-product", []),
            [f"arn:{partition}:securityhub:{region}:{account}:product/{account}/default"],
        ),
        _allow(
            "SetFindingWorkflow",
            [a for a in actions.get("hub", []) if a == "securityhub:BatchUpdateFindings"],
            [hub],
            _WORKFLOW_ONLY,
        ),
        _allow(
            "ReadOwnFindings",
            [a for a in actions.get("hub", []) if a != "securityhub:BatchUpdateFindings"],
            [hub],
        ),
        _allow("PublishChatNotifications", actions.get("chat-topic", []), [sinks.chat_topic_arn or ""]),
        _allow(
            "PutDecisionEvents",
            actions.get("event-bus", []),
            [f"arn:{partition}:events:{region}:{account}:event-bus/default"],
        ),
    ]


def response_function_policy(
    mode: str,
    allow_account_remediation: bool,
    targets: PolicyTargets,
    exception_buckets: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The function role's policy document for ``mode`` (see module docstring)."""
    actions = iam_actions_by_resource(
        mode, allow_account_remediation, targets.sinks.names if targets.sinks else ()
    )
    account_reads = [a for a in actions.get("account", []) if _is_read(a)]
    account_writes = [a for a in actions.get("account", []) if not _is_read(a)]
    statements = _bucket_statements(actions, targets.partition, targets.account_id, exception_buckets)
    if account_reads:
        statements.append(_allow("AccountBlockPublicAccessRead", account_reads, ["*"]))
    if account_writes:
        statements.append(_allow("AccountBlockPublicAccessWriteNoResourceType", account_writes, ["*"]))
    # Access points of this account, in any region (an access point policy event names one).
    access_points = f"arn:{targets.partition}:s3:*:{targets.account_id}:accesspoint/*"
    statements.append(_allow("ReadAccessPointExposure", actions.get("access-point", []), [access_points]))
    statements += [
        _allow("PublishAlerts", actions.get("topic", []), [targets.topic_arn]),
        _allow("UseAlertKey", actions.get("key", []), [targets.key_arn]),
        _allow("RecordSeenEvents", actions.get("table", []), [targets.table_arn]),
        # LookupEvents has no resource type: it reads this account's management events only.
        _allow("ReadActorHistoryNoResourceType", actions.get("history", []), ["*"]),
        # Infrastructure, not code: Lambda sends failed async events to the DLQ as the function.
        _allow("DeadLetterFailedEvents", ["sqs:SendMessage"], [targets.dead_letter_queue_arn]),
        _own_logs(targets.log_group_arn),
    ]
    if targets.review_queue_arn:
        statements.append(
            _allow("RequestExposureReviews", actions.get("review-queue", []), [targets.review_queue_arn])
        )
    statements += sink_statements(actions, targets.partition, targets.account_id, targets.sinks)
    return _document(statements)


@dataclass(frozen=True)
class SweepPolicyTargets:
    """The ARNs the sweep function's statements are scoped to."""

    partition: str
    account_id: str
    topic_arn: str
    key_arn: str
    table_arn: str
    work_queue_arn: str
    dead_letter_queue_arn: str  # the work queue's: also where failed scheduled runs go
    log_group_arn: str
    review_queue_arn: str | None = None  # the exposure review's queue, when deployed
    sinks: SinkTargets | None = None


def sweep_function_policy(
    mode: str, targets: SweepPolicyTargets, exception_buckets: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The sweep role's policy document for ``mode``, from ``sweep_calls_for`` in
    handlers/response/permissions.py.

    The response function's bucket statements (reads everywhere; the one write only in enforce
    mode, in this account, never on exception buckets), plus listing buckets (``s3:ListAllMyBuckets``
    has no resource type: a read on ``*``), the exposure ledger, and the work queue.
    """
    actions = sweep_iam_actions_by_resource(mode, targets.sinks.names if targets.sinks else ())
    statements = _bucket_statements(actions, targets.partition, targets.account_id, exception_buckets)
    statements += [
        _allow("ListBucketsNoResourceType", actions.get("listing", []), ["*"]),
        _allow("AccountBlockPublicAccessRead", actions.get("account", []), ["*"]),
        _allow("PublishAlerts", actions.get("topic", []), [targets.topic_arn]),
        _allow("UseStackKey", actions.get("key", []), [targets.key_arn]),
        _allow("ExposureLedger", actions.get("table", []), [targets.table_arn]),
        _allow("EnqueueSweepBatches", actions.get("queue", []), [targets.work_queue_arn]),
        _queue_source("ReceiveSweepBatches", targets.work_queue_arn),
        # Infrastructure: Lambda sends a scheduled run that failed every attempt here.
        _allow("DeadLetterFailedRuns", ["sqs:SendMessage"], [targets.dead_letter_queue_arn]),
        _own_logs(targets.log_group_arn),
    ]
    if targets.review_queue_arn:
        statements.append(
            _allow("RequestExposureReviews", actions.get("review-queue", []), [targets.review_queue_arn])
        )
    statements += sink_statements(actions, targets.partition, targets.account_id, targets.sinks)
    _check_covered(actions, SWEEP_RESOURCES, "sweep")
    return _document(statements)


@dataclass(frozen=True)
class ReviewPolicyTargets:
    """The ARNs the exposure review's statements are scoped to."""

    partition: str
    account_id: str
    topic_arn: str
    key_arn: str
    table_arn: str
    review_queue_arn: str
    dead_letter_queue_arn: str
    log_group_arn: str
    trail_arn: str | None  # the detector's own trail (trail.create), whose selectors and files it reads
    trail_bucket: str | None


def review_function_policy(targets: ReviewPolicyTargets, log_buckets: tuple[str, ...]) -> dict[str, Any]:
    """The exposure review's policy: reads of logging settings everywhere, of log objects only where allowed.

    ``log_buckets`` (``review.log_buckets``, names or globs) and the trail bucket are the only
    buckets whose objects it may list and read; it writes nothing but its alerts and state.
    """
    actions = group_by_resource(review_calls())
    p = targets.partition
    readable = [g for g in log_buckets if _iam_expressible(g)]
    if targets.trail_bucket:
        readable.append(targets.trail_bucket)
    statements = [
        _allow("ReadLoggingSettings", actions.get("bucket", []), [f"arn:{p}:s3:::*"]),
        _allow(
            "ListLogBuckets",
            actions.get("log-bucket", []) if readable else [],
            [f"arn:{p}:s3:::{b}" for b in readable],
        ),
        _allow(
            "ReadLogObjects",
            actions.get("log-object", []) if readable else [],
            [f"arn:{p}:s3:::{b}/*" for b in readable],
        ),
        _allow(
            "ReadTrailSelectors",
            actions.get("trail", []) if targets.trail_arn else [],
            [targets.trail_arn or ""],
        ),
        _allow("PublishAlerts", actions.get("topic", []), [targets.topic_arn]),
        _allow("UseStackKey", actions.get("key", []), [targets.key_arn]),
        _allow("ReviewState", actions.get("table", []), [targets.table_arn]),
        _allow("ContinueLongReviews", actions.get("review-queue", []), [targets.review_queue_arn]),
        _queue_source("ReceiveReviewRequests", targets.review_queue_arn),
        _allow("DeadLetterFailedReviews", ["sqs:SendMessage"], [targets.dead_letter_queue_arn]),
        _own_logs(targets.log_group_arn),
    ]
    _check_covered(actions, REVIEW_RESOURCES, "review")
    return _document(statements)


def _bucket_statements(
    actions: dict[str, list[str]], partition: str, account_id: str, exception_buckets: tuple[str, ...]
) -> list[dict[str, Any]]:
    """Reads on every bucket; writes (enforce) only in this account and never on exception buckets."""
    bucket_reads = [a for a in actions.get("bucket", []) if _is_read(a)]
    bucket_writes = [a for a in actions.get("bucket", []) if not _is_read(a)]
    all_buckets = f"arn:{partition}:s3:::*"
    in_this_account = {"StringEquals": {"aws:ResourceAccount": account_id}}
    statements: list[dict[str, Any]] = [_allow("ReadBucketExposure", bucket_reads, [all_buckets])]
    if bucket_writes:
        statements.append(_allow("CloseBucketsInThisAccount", bucket_writes, [all_buckets], in_this_account))
        protected = [f"arn:{partition}:s3:::{glob}" for glob in exception_buckets if _iam_expressible(glob)]
        if protected:
            # Buckets that are public on purpose are never closed, whatever the code decides.
            statements.append(
                {
                    "Sid": "NeverCloseExceptionBuckets",
                    "Effect": "Deny",
                    "Action": bucket_writes,
                    "Resource": protected,
                }
            )
    return statements


def _allow(
    sid: str, actions: list[str], resources: list[str], condition: dict[str, Any] | None = None
) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Sid": sid,
        "Effect": "Allow",
        "Action": sorted(actions),
        "Resource": resources,
    }
    if condition:
        statement["Condition"] = condition
    return statement


def _own_logs(log_group_arn: str) -> dict[str, Any]:
    return _allow(
        "WriteOwnLogs",
        ["logs:CreateLogStream", "logs:PutLogEvents"],
        [log_group_arn, f"{log_group_arn}:log-stream:*"],
    )


def _queue_source(sid: str, queue_arn: str) -> dict[str, Any]:
    # Infrastructure, not code: the event source mapping polls the queue as the function.
    return _allow(sid, ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"], [queue_arn])


def _check_covered(actions: dict[str, list[str]], covered: frozenset[str], calls: str) -> None:
    """Fail the synth when the code calls on a resource no statement scopes (it would be denied)."""
    unknown = set(actions) - covered
    if unknown:
        raise ValueError(
            f"handlers/response/permissions.py: {calls} calls on resources no statement covers: {unknown}"
        )


def _document(statements: list[dict[str, Any]]) -> dict[str, Any]:
    # A statement with no actions (a sink or a mode that is off) is left out of the document.
    return {"Version": "2012-10-17", "Statement": [s for s in statements if s["Action"]]}


def _is_read(action: str) -> bool:
    verb = action.split(":", 1)[1]
    return verb.startswith(("Get", "List", "Describe", "Lookup"))


def _iam_expressible(glob: str) -> bool:
    return set(glob) <= _IAM_GLOB_SAFE


def lambda_assume_role_policy(account_id: str) -> dict[str, Any]:
    """Trust policy: only Lambda, on behalf of this account, may assume the function's role."""
    return service_assume_role_policy("lambda.amazonaws.com", account_id)


def service_assume_role_policy(service: str, account_id: str) -> dict[str, Any]:
    """Trust policy: only ``service``, on behalf of this account, may assume the role."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": service},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
            }
        ],
    }
