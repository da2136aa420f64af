"""Settings of the response Lambda, read from its environment variables.

The infrastructure passes exactly these variables, named once in :mod:`handlers.response.function_env`.
A missing or invalid required setting raises :class:`ConfigError` naming the variable, at the
first invocation, so the event lands in the dead-letter queue instead of being dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from handlers.detection.approvals import DEFAULT_MAX_APPROVAL_DAYS
from handlers.detection.rules.detector_context import ENVIRONMENT as DETECTOR_ENVIRONMENT
from handlers.detection.rules.detector_context import NO_CONTEXT, DetectorContext, from_environment
from handlers.detection.safe_text import ACCOUNT_ID, REGION_NAME
from handlers.response.function_env import RUNTIME_REGION
from handlers.response.function_env import ResponseEnv as Env
from handlers.response.permissions import MODES

DEFAULT_SENSITIVE_TAG = "data-classification"
DEFAULT_SENSITIVE_VALUES = ("confidential", "restricted", "sensitive")
PRODUCTION_NAMES = frozenset({"production", "prod"})
DEFAULT_ACTOR_HISTORY_SECONDS = 5.0

_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]{1,256}$")
_TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
# An SQS queue URL (the local emulator serves http:// on a port).
QUEUE_URL = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d+)?/\d{12}/[A-Za-z0-9_-]{1,80}$")
_PRINCIPAL_GLOB = re.compile(r"^arn:[a-z*-]+:[a-z*]+::[0-9*]{1,12}:[A-Za-z0-9+=,.@_/:*?-]{1,512}$")
_LOG_LEVELS = frozenset({"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"})


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the environment variable."""


@dataclass(frozen=True)
class Settings:
    """Everything the response Lambda is configured with."""

    alert_topic_arn: str
    remediation_mode: str  # off | dry-run | enforce
    allow_account_remediation: bool
    environment: str
    account_name: str
    expected_account_id: str
    exception_buckets: tuple[str, ...]  # names or fnmatch globs
    approval_tag: str
    sensitive_tag: str
    sensitive_tag_values: frozenset[str]
    idempotency_table: str
    log_level: str
    # Regions whose events this stack routes (the home region first); an event from any other
    # region was not delivered by our rules.
    watched_regions: tuple[str, ...] = ()
    max_approval_days: int = DEFAULT_MAX_APPROVAL_DAYS
    # The detector's own trail, log bucket and keys (TRAIL_NAME, TRAIL_BUCKET, TRAIL_KMS_KEY_ARN,
    # DETECTOR_KMS_KEY_ARN), so tampering with them is recognised; all optional.
    detector: DetectorContext = NO_CONTEXT
    # ARN globs of principals reported as trusted automation (context only, never lowers severity).
    trusted_principals: tuple[str, ...] = ()
    # Seconds the alert may spend on the actor's CloudTrail history; 0 skips it.
    actor_history_seconds: float = DEFAULT_ACTOR_HISTORY_SECONDS
    # The exposure review's queue: a closed (or still open) window is sent there to be reviewed.
    review_queue_url: str | None = None
    # Where else each decision goes (handlers.response.sinks): Security Hub (ASFF), the chat topic
    # (Amazon Q Developer custom notifications) and the default event bus.
    security_hub: bool = False
    chat_topic_arn: str | None = None
    decision_events: bool = False

    @property
    def production(self) -> bool:
        """Whether this stack watches a production account."""
        return self.environment.strip().lower() in PRODUCTION_NAMES

    @property
    def topic_region(self) -> str:
        """The region of the alert topic, from its ARN."""
        return self.alert_topic_arn.split(":")[3]


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Read and validate the settings; :class:`ConfigError` names the first bad variable."""
    topic = _required(environ, Env.ALERT_TOPIC_ARN)
    if not _TOPIC_ARN.match(topic):
        raise ConfigError(f"{Env.ALERT_TOPIC_ARN}: expected an SNS topic ARN, got {topic!r}")
    account = _required(environ, Env.EXPECTED_ACCOUNT_ID)
    if not ACCOUNT_ID.fullmatch(account):
        raise ConfigError(f"{Env.EXPECTED_ACCOUNT_ID}: expected 12 digits, got {account!r}")
    table = _required(environ, Env.IDEMPOTENCY_TABLE)
    if not _TABLE_NAME.match(table):
        raise ConfigError(f"{Env.IDEMPOTENCY_TABLE}: expected a DynamoDB table name, got {table!r}")
    mode = environ.get(Env.REMEDIATION_MODE, "").strip().lower() or "off"
    if mode not in MODES:
        raise ConfigError(f"{Env.REMEDIATION_MODE}: expected one of {', '.join(MODES)}, got {mode!r}")
    log_level = environ.get(Env.LOG_LEVEL, "").strip().upper() or "INFO"
    if log_level not in _LOG_LEVELS:
        raise ConfigError(
            f"{Env.LOG_LEVEL}: expected one of {', '.join(sorted(_LOG_LEVELS))}, got {log_level!r}"
        )
    detector = _detector_context(environ)
    sensitive_values = environ.get(Env.SENSITIVE_TAG_VALUES, "").strip()
    values = (
        frozenset(v.strip().lower() for v in sensitive_values.split(",") if v.strip())
        if sensitive_values
        else frozenset(DEFAULT_SENSITIVE_VALUES)
    )
    return Settings(
        alert_topic_arn=topic,
        remediation_mode=mode,
        allow_account_remediation=_boolean(environ, Env.ALLOW_ACCOUNT_REMEDIATION),
        environment=environ.get(Env.ENVIRONMENT, "").strip() or "unspecified",
        account_name=environ.get(Env.ACCOUNT_NAME, "").strip() or account,
        expected_account_id=account,
        exception_buckets=_bucket_globs(environ),
        approval_tag=detector.approval_tag,  # APPROVAL_TAG, read with the detector context
        sensitive_tag=environ.get(Env.SENSITIVE_TAG, "").strip() or DEFAULT_SENSITIVE_TAG,
        sensitive_tag_values=values,
        idempotency_table=table,
        log_level=log_level,
        watched_regions=_regions(environ),
        max_approval_days=_max_approval_days(environ),
        detector=detector,
        trusted_principals=_principal_globs(environ),
        actor_history_seconds=_actor_history_seconds(environ),
        review_queue_url=_review_queue(environ),
        security_hub=_boolean(environ, Env.SECURITY_HUB),
        chat_topic_arn=_chat_topic(environ),
        decision_events=_boolean(environ, Env.DECISION_EVENTS),
    )


def _chat_topic(environ: Mapping[str, str]) -> str | None:
    """``CHAT_TOPIC_ARN``: the chat topic (Amazon Q Developer custom notifications), when deployed."""
    raw = environ.get(Env.CHAT_TOPIC_ARN, "").strip()
    if not raw:
        return None
    if not _TOPIC_ARN.match(raw):
        raise ConfigError(f"{Env.CHAT_TOPIC_ARN}: expected an SNS topic ARN, got {raw[:200]!r}")
    return raw


def _principal_globs(environ: Mapping[str, str]) -> tuple[str, ...]:
    """``TRUSTED_PRINCIPALS``: a JSON list of ARN globs."""
    raw = environ.get(Env.TRUSTED_PRINCIPALS, "").strip()
    if not raw:
        return ()
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"{Env.TRUSTED_PRINCIPALS}: expected a JSON list of ARN globs ({exc})") from None
    if not isinstance(value, list) or not all(
        isinstance(v, str) and _PRINCIPAL_GLOB.fullmatch(v) for v in value
    ):
        raise ConfigError(
            f"{Env.TRUSTED_PRINCIPALS}: expected a JSON list of IAM/STS ARN globs, got {raw[:200]!r}"
        )
    return tuple(value)


def _actor_history_seconds(environ: Mapping[str, str]) -> float:
    raw = environ.get(Env.ACTOR_HISTORY_SECONDS, "").strip()
    if not raw:
        return DEFAULT_ACTOR_HISTORY_SECONDS
    if not raw.isdigit() or int(raw) > 30:
        raise ConfigError(
            f"{Env.ACTOR_HISTORY_SECONDS}: expected a whole number of seconds from 0 to 30, got {raw!r}"
        )
    return float(raw)


def _review_queue(environ: Mapping[str, str]) -> str | None:
    """``REVIEW_QUEUE_URL``: where closed (and still open) exposure windows go to be reviewed."""
    raw = environ.get(Env.REVIEW_QUEUE_URL, "").strip()
    if not raw:
        return None
    if not QUEUE_URL.fullmatch(raw):
        raise ConfigError(f"{Env.REVIEW_QUEUE_URL}: expected an SQS queue URL, got {raw[:200]!r}")
    return raw


def _regions(environ: Mapping[str, str]) -> tuple[str, ...]:
    """``WATCHED_REGIONS`` (comma-separated); unset: the function's own region (``AWS_REGION``)."""
    raw = environ.get(Env.WATCHED_REGIONS, "").strip() or environ.get(RUNTIME_REGION, "").strip()
    regions = tuple(dict.fromkeys(r.strip() for r in raw.split(",") if r.strip()))
    bad = [r for r in regions if not REGION_NAME.fullmatch(r)]
    if bad:
        raise ConfigError(f"{Env.WATCHED_REGIONS}: expected comma-separated AWS regions, got {bad[0]!r}")
    return regions


def _max_approval_days(environ: Mapping[str, str]) -> int:
    raw = environ.get(Env.MAX_APPROVAL_DAYS, "").strip()
    if not raw:
        return DEFAULT_MAX_APPROVAL_DAYS
    if not raw.isdigit() or not 1 <= int(raw) <= 3650:
        raise ConfigError(
            f"{Env.MAX_APPROVAL_DAYS}: expected a whole number of days from 1 to 3650, got {raw!r}"
        )
    return int(raw)


_DETECTOR_NAMES = {field: name for name, field in DETECTOR_ENVIRONMENT.items()}
_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]{1,128}$")


def _detector_context(environ: Mapping[str, str]) -> DetectorContext:
    context = from_environment(environ)
    for field in ("trail_key_arn", "detector_key_arn"):
        name, value = _DETECTOR_NAMES[field], getattr(context, field)
        # A key id or alias here would never match a record's key ARN: fail loudly instead.
        if value and not _KEY_ARN.match(value):
            raise ConfigError(f"{name}: expected a KMS key ARN (arn:aws:kms:...:key/<id>), got {value!r}")
    return context


def _required(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name}: required environment variable is missing or empty")
    return value


def _boolean(environ: Mapping[str, str], name: str) -> bool:
    raw = environ.get(name, "").strip().lower()
    if raw in ("", "false", "0", "no"):
        return False
    if raw in ("true", "1", "yes"):
        return True
    raise ConfigError(f'{name}: expected "true" or "false", got {raw!r}')


def _bucket_globs(environ: Mapping[str, str]) -> tuple[str, ...]:
    raw = environ.get(Env.EXCEPTION_BUCKETS, "").strip()
    if not raw:
        return ()
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(
            f"{Env.EXCEPTION_BUCKETS}: expected a JSON list of bucket names or globs ({exc})"
        ) from None
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{Env.EXCEPTION_BUCKETS}: expected a JSON list of non-empty strings, got {raw!r}")
    return tuple(v.strip() for v in value)
