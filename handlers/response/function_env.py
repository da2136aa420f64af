"""The functions' environment variables: one name for each, shared by the stack and the handlers.

The stacks write a function's environment through :func:`environment` (``stacks/response_function.py``,
``stacks/sweep.py``, ``stacks/review.py``); the handlers read it with the same members
(:mod:`handlers.response.response_config`, :mod:`handlers.sweep.config`,
:mod:`handlers.review.function`). A name
typed on one side only is an ``AttributeError`` at import, and :func:`environment` refuses a
variable set the handler does not read, or a required one left out, when the stack is synthesized.

The detector-context names (``TRAIL_NAME``, ``TRAIL_BUCKET``, ``TRAIL_KMS_KEY_ARN``,
``DETECTOR_KMS_KEY_ARN``, ``APPROVAL_TAG``) are declared in
:data:`handlers.detection.rules.detector_context.ENVIRONMENT`, where the rules read them; they are part of
every function's environment through :data:`DETECTOR`.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from handlers.detection.rules.detector_context import ENVIRONMENT as DETECTOR_ENVIRONMENT


class ResponseEnv(StrEnum):
    """What the response function reads (the sweep and the review read all of it too)."""

    ALERT_TOPIC_ARN = "ALERT_TOPIC_ARN"
    EXPECTED_ACCOUNT_ID = "EXPECTED_ACCOUNT_ID"
    IDEMPOTENCY_TABLE = "IDEMPOTENCY_TABLE"
    REMEDIATION_MODE = "REMEDIATION_MODE"
    ALLOW_ACCOUNT_REMEDIATION = "ALLOW_ACCOUNT_REMEDIATION"
    ENVIRONMENT = "ENVIRONMENT"
    ACCOUNT_NAME = "ACCOUNT_NAME"
    EXCEPTION_BUCKETS = "EXCEPTION_BUCKETS"
    MAX_APPROVAL_DAYS = "MAX_APPROVAL_DAYS"
    WATCHED_REGIONS = "WATCHED_REGIONS"
    SENSITIVE_TAG = "SENSITIVE_TAG"
    SENSITIVE_TAG_VALUES = "SENSITIVE_TAG_VALUES"
    LOG_LEVEL = "LOG_LEVEL"
    TRUSTED_PRINCIPALS = "TRUSTED_PRINCIPALS"
    ACTOR_HISTORY_SECONDS = "ACTOR_HISTORY_SECONDS"
    SECURITY_HUB = "SECURITY_HUB"
    DECISION_EVENTS = "DECISION_EVENTS"
    CHAT_TOPIC_ARN = "CHAT_TOPIC_ARN"  # only with alerts.chat
    REVIEW_QUEUE_URL = "REVIEW_QUEUE_URL"  # only with the exposure review


class SweepEnv(StrEnum):
    """The sweep's own variables, on top of :class:`ResponseEnv`."""

    WORK_QUEUE_URL = "SWEEP_WORK_QUEUE_URL"
    FANOUT_THRESHOLD = "SWEEP_FANOUT_THRESHOLD"
    THREADS = "SWEEP_THREADS"
    BATCH_SIZE = "SWEEP_BATCH_SIZE"
    DIGEST_HOUR = "SWEEP_DIGEST_HOUR"


class ReviewEnv(StrEnum):
    """The exposure review's own variables, on top of :class:`ResponseEnv`."""

    LATE_MARGIN_MINUTES = "REVIEW_LATE_MARGIN_MINUTES"
    LOG_TARGET_BUCKET = "REVIEW_LOG_TARGET_BUCKET"  # only when a log bucket is named outright


# Set by Lambda itself, never by the stack (the function's own region).
RUNTIME_REGION = "AWS_REGION"

DETECTOR: frozenset[str] = frozenset(DETECTOR_ENVIRONMENT)
# Written only when the feature they point at is deployed; every other name is always written.
OPTIONAL: frozenset[str] = frozenset(
    {ResponseEnv.CHAT_TOPIC_ARN.value, ResponseEnv.REVIEW_QUEUE_URL.value, ReviewEnv.LOG_TARGET_BUCKET.value}
)

RESPONSE: frozenset[str] = frozenset(m.value for m in ResponseEnv) | DETECTOR
SWEEP: frozenset[str] = RESPONSE | frozenset(m.value for m in SweepEnv)
REVIEW: frozenset[str] = RESPONSE | frozenset(m.value for m in ReviewEnv)


class EnvironmentMismatch(ValueError):
    """The stack wrote a variable the handler does not read, or left out one it needs."""


def environment(function: str, names: frozenset[str], values: Mapping[str, str]) -> dict[str, str]:
    """The function's environment (plain ``str`` keys): exactly ``names``, less unset :data:`OPTIONAL` ones.

    ``function`` names the function in the error: which variables are unknown or missing.
    """
    written = {str(name): value for name, value in values.items()}
    unknown = sorted(set(written) - names)
    missing = sorted(names - OPTIONAL - set(written))
    if unknown or missing:
        raise EnvironmentMismatch(
            f"{function} environment: unknown {unknown or 'none'}, missing {missing or 'none'} "
            "(handlers/response/function_env.py declares what the handler reads)"
        )
    return written
