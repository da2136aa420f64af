"""The deploy configuration (``detector.toml``): schema, defaults and validation.

One file, versioned in the repo, read with the standard library's ``tomllib``. Every
setting is declared once in :data:`SCHEMA` with its default, its expected form and a
one-line description; the README's config reference is printed from the same table
(``python -m stacks.config --reference``). A bad value stops synth with a
:class:`ConfigError` that names the file, the field and what was expected.

No cdktf import here: the config is plain data, loadable in tests in milliseconds.
"""

from __future__ import annotations

import re
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from handlers.detection.rules import blind_spots, data_event_names
from handlers.detection.rules.declarations import OBJECT_ACL_OPTION, OBJECT_WRITE_OPTION
from handlers.detection.safe_text import ACCOUNT_ID
from handlers.response.permissions import MODES

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "detector.toml"

# Partitions whose regions a stack may name; their ARNs differ (arn:aws-cn:...).
PARTITIONS = ("aws", "aws-cn", "aws-us-gov")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# Retention values CloudWatch Logs accepts.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
                      2557, 2922, 3288, 3653)  # fmt: skip

_STACK_NAME = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")
_EMAIL = re.compile(r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
_HTTPS_URL = re.compile(r"^https://[A-Za-z0-9.-]+(:\d+)?(/\S*)?$")
_ROLE_ARN = re.compile(r"^arn:aws(-cn|-us-gov)?:iam::(\d{12}):role/[A-Za-z0-9+=,.@_/-]{1,512}$")
_TAG_KEY = re.compile(r"^[A-Za-z0-9 _.:/=+@-]{1,128}$")
_ENVIRONMENT = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_BUCKET_GLOB = re.compile(r"^[a-z0-9.*?\[\]!-]{1,63}$")
# An IAM/STS principal ARN, where '*' and '?' may stand for any part (account, name, path).
_PRINCIPAL_GLOB = re.compile(
    r"^arn:(aws|aws-cn|aws-us-gov|\*):(iam|sts|\*)::(\d{12}|\*):[A-Za-z0-9+=,.@_/:*?-]{1,512}$"
)


class ConfigError(ValueError):
    """A config value is missing, unknown or malformed; the message names file, field and expected form."""


@cache
def known_regions() -> dict[str, str]:
    """Every region botocore knows, mapped to its partition (offline: botocore ships the list)."""
    import botocore.session  # deferred: only validation needs it

    session = botocore.session.get_session()
    regions: dict[str, str] = {}
    for partition in PARTITIONS:
        for region in session.get_available_regions("s3", partition_name=partition):
            regions[region] = partition
    return regions


# ---- validators: each returns the normalised value or raises ValueError(expected form) ----


def _string(pattern: re.Pattern[str], expected: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not pattern.fullmatch(value):  # "$" would allow a final newline
            raise ValueError(expected)
        return value

    return check


def _choice(options: tuple[str, ...]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or value not in options:
            raise ValueError(f"one of {', '.join(repr(o) for o in options)}")
        return value

    return check


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("true or false (unquoted)")
    return value


def _int_in(options: tuple[int, ...]) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value not in options:
            raise ValueError(f"one of {', '.join(str(o) for o in options)}")
        return value

    return check


def _int_range(low: int, high: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ValueError(f"an integer from {low} to {high}")
        return value

    return check


def _region(value: Any) -> str:
    if not isinstance(value, str) or value not in known_regions():
        raise ValueError("a known AWS region name such as 'eu-west-1' (see botocore's region list)")
    return value


def _list_of(
    item: Callable[[Any], Any], expected_item: str, *, min_items: int = 0
) -> Callable[[Any], tuple[Any, ...]]:
    def check(value: Any) -> tuple[Any, ...]:
        if not isinstance(value, list) or len(value) < min_items:
            at_least = f"at least {min_items} " if min_items else ""
            raise ValueError(f"a list of {at_least}{expected_item}")
        items = []
        for index, element in enumerate(value):
            try:
                items.append(item(element))
            except ValueError as exc:
                raise ValueError(f"item {index} ({element!r}): expected {exc}") from None
        if len(set(items)) != len(items):
            raise ValueError(f"a list of distinct {expected_item}")
        return tuple(items)

    return check


account_id = _string(ACCOUNT_ID, 'a 12-digit account id in quotes, e.g. "123456789012"')
email = _string(_EMAIL, "an email address such as secops@example.com")
https_url = _string(_HTTPS_URL, "an https:// URL")
tag_key = _string(_TAG_KEY, "an S3 tag key (1-128 letters, digits, spaces or _.:/=+-@)")
stack_name = _string(
    _STACK_NAME, "3-32 characters: lower-case letters, digits and '-', starting with a letter"
)
role_arn = _string(_ROLE_ARN, "an IAM role ARN such as arn:aws:iam::123456789012:role/detector-deploy")
environment = _string(_ENVIRONMENT, "a lower-case word such as 'production' or 'staging'")
tag_value = _string(re.compile(r"^[^,]{1,256}$"), "a tag value of 1-256 characters without commas")
bucket_glob = _string(_BUCKET_GLOB, "a bucket name or glob (lower case, digits, '.', '-', '*', '?')")
principal_glob = _string(
    _PRINCIPAL_GLOB, "an IAM or STS ARN, '*' and '?' allowed, e.g. arn:aws:iam::*:role/terraform-deploy"
)


@dataclass(frozen=True)
class Setting:
    """One config key: its default (``REQUIRED`` when it has none), validator and description."""

    default: Any
    check: Callable[[Any], Any]
    expected: str
    doc: str


REQUIRED = object()

# The one place defaults live. Keys are "table.key" paths inside one [[accounts]] entry.
SCHEMA: dict[str, Setting] = {
    "name": Setting(
        REQUIRED,
        stack_name,
        "3-32 chars: lower case, digits, '-'",
        "stack name; `cdktf deploy <name>` deploys this account",
    ),
    "account_id": Setting(REQUIRED, account_id, "12-digit string", "the AWS account the stack deploys to"),
    "home_region": Setting(REQUIRED, _region, "AWS region", "region of the trail, function, topic and table"),
    "watch_regions": Setting(
        (),
        _list_of(_region, "AWS region names"),
        "list of AWS regions",
        "regions whose S3 events are forwarded to the home region (the home region is always watched)",
    ),
    "deploy_role_arn": Setting(
        None, role_arn, "IAM role ARN in this account", "role the AWS provider assumes to deploy (optional)"
    ),
    "environment": Setting(
        "production",
        environment,
        "lower-case word, e.g. production",
        "environment label; feeds alert severity",
    ),
    "log_level": Setting("INFO", _choice(LOG_LEVELS), "DEBUG|INFO|WARNING|ERROR", "the function's log level"),
    "alerts.emails": Setting(
        (),
        _list_of(email, "email addresses"),
        "list of emails",
        "email subscriptions to the alert topic (each must confirm)",
    ),
    "alerts.https_endpoints": Setting(
        (),
        _list_of(https_url, "https:// URLs"),
        "list of https URLs",
        "HTTPS subscriptions (e.g. a chat webhook relay)",
    ),
    "alerts.trusted_principals": Setting(
        (),
        _list_of(principal_glob, "IAM/STS ARN globs"),
        "list of ARN globs",
        "principals reported as 'change by trusted automation' (e.g. the Terraform deploy role); "
        "context only, never lowers severity",
    ),
    "alerts.actor_history_seconds": Setting(
        5,
        _int_range(0, 30),
        "0-30",
        "time budget of the actor-history query (CloudTrail LookupEvents) per alert; 0 turns it off",
    ),
    "alerts.security_hub": Setting(
        False,
        _boolean,
        "true|false",
        "import every decision into AWS Security Hub (ASFF, the account's default product); "
        "Security Hub must be enabled in the home region",
    ),
    "alerts.chat": Setting(
        False,
        _boolean,
        "true|false",
        "a second topic carrying Amazon Q Developer (AWS Chatbot) custom notifications for Slack "
        "and Teams channels; subscribe the chat client to it",
    ),
    "alerts.eventbridge": Setting(
        True,
        _boolean,
        "true|false",
        'put every decision on the default event bus (source "s3-exposure-detector", detail-type '
        '"S3 Exposure Decision") for your own rules: PagerDuty, Opsgenie, ticketing',
    ),
    "review.enabled": Setting(
        True,
        _boolean,
        "true|false",
        "deploy the exposure review: did anyone read or write a bucket while it was public "
        "(S3 server access logs, CloudTrail data events)",
    ),
    "review.log_buckets": Setting(
        (),
        _list_of(bucket_glob, "bucket names or globs"),
        "list of names/globs",
        "buckets holding server access logs the review may read (s3:GetObject); others are "
        "reported as not readable",
    ),
    "review.late_margin_minutes": Setting(
        120,
        _int_range(0, 1440),
        "0-1440",
        "how far past a window's end the review reads, for access log records delivered late",
    ),
    "remediation.mode": Setting(
        "off",
        _choice(MODES),
        "off|dry-run|enforce",
        "off: alert only; dry-run: alert with the change it would make; "
        "enforce: apply bucket Block Public Access",
    ),
    "remediation.allow_account_level": Setting(
        False,
        _boolean,
        "true|false",
        "with enforce, may also turn on account-level Block Public "
        "Access when the account's own setting was switched off",
    ),
    "exceptions.buckets": Setting(
        (),
        _list_of(bucket_glob, "bucket names or globs"),
        "list of names/globs",
        "buckets that are public on purpose: alerted at low severity, never remediated",
    ),
    "exceptions.approval_tag": Setting(
        "public-access-approved-until",
        tag_key,
        "tag key",
        "bucket tag whose value (an ISO date) approves public access until then",
    ),
    "exceptions.max_approval_days": Setting(
        90,
        _int_range(1, 3650),
        "1-3650",
        "longest an approval tag may reach ahead: a later expiry counts as no approval (an approval "
        "covers public read only, never write)",
    ),
    "exceptions.sensitive_tag": Setting(
        "data-classification", tag_key, "tag key", "bucket tag that marks sensitive data (raises severity)"
    ),
    "exceptions.sensitive_tag_values": Setting(
        ("confidential", "restricted", "sensitive"),
        _list_of(tag_value, "tag values without commas"),
        "list of tag values",
        "values of the sensitive tag that count",
    ),
    "trail.create": Setting(
        True,
        _boolean,
        "true|false",
        "create a multi-region trail; false relies on an existing (e.g. organisation) "
        "trail that logs management write events in every watched region",
    ),
    "trail.kms_encryption": Setting(True, _boolean, "true|false", "encrypt trail logs with a KMS key"),
    "trail.log_retention_days": Setting(
        365, _int_range(1, 3650), "1-3650", "days before trail log files expire from the log bucket"
    ),
    "trail.object_acl_data_events": Setting(
        False,
        _boolean,
        "true|false",
        f"record {'/'.join(data_event_names(OBJECT_ACL_OPTION))} data events"
        " (costs money: $0.10 per 100,000 events)",
    ),
    "trail.object_write_data_events": Setting(
        False,
        _boolean,
        "true|false",
        f"also record {'/'.join(data_event_names(OBJECT_WRITE_OPTION))}"
        " (catches uploads with a public ACL; costly on busy buckets)",
    ),
    "function.reserved_concurrency": Setting(
        5, _int_range(1, 100), "1-100", "the response function's reserved concurrency"
    ),
    "function.log_retention_days": Setting(
        365,
        _int_in(LOG_RETENTION_DAYS),
        "CloudWatch retention value",
        "retention of the function's log group",
    ),
    "function.timeout_seconds": Setting(
        120, _int_range(3, 900), "3-900", "the function's timeout (S3 reads retry with backoff)"
    ),
    "sweep.enabled": Setting(
        True,
        _boolean,
        "true|false",
        "deploy the scheduled exposure sweep (the configuration checker beside the event path)",
    ),
    "sweep.interval_minutes": Setting(
        60,
        _int_range(15, 1440),
        "15-1440",
        "minutes between sweeps (hourly: 720 runs and ~6 S3 reads per bucket per run a month); "
        "the missed-sweep alarm waits twice this",
    ),
    "sweep.fanout_threshold": Setting(
        3000,
        _int_range(100, 1_000_000),
        "100-1000000",
        "above this many buckets the scheduled run only lists and enqueues; worker invocations check",
    ),
    "sweep.threads": Setting(
        16, _int_range(1, 64), "1-64", "bucket checks in flight per sweep invocation (bounded parallelism)"
    ),
    "sweep.worker_concurrency": Setting(
        4,
        _int_range(2, 50),
        "2-50",
        "most worker invocations at once (the SQS event source's maximum concurrency)",
    ),
    "sweep.digest_hour_utc": Setting(
        8, _int_range(0, 23), "0-23", "UTC hour from which the daily digest of known exposures is sent"
    ),
}
TABLES = ("alerts", "remediation", "exceptions", "trail", "function", "sweep", "review")

# ---- [state]: where Terraform keeps each stack's state (one table for the whole file) ----

STATE_BACKENDS = ("local", "s3")
_STATE_BUCKET = re.compile(r"^(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# S3 "safe" key characters; '/' separates parts, which must be non-empty and never '..'.
_STATE_KEY_PREFIX = re.compile(r"^(?!/)(?!.*//)(?!.*/$)(?!(.*/)?\.\.(/|$))[A-Za-z0-9!_.*'()/-]{1,512}$")
state_bucket = _string(_STATE_BUCKET, "an S3 bucket name (3-63 lower-case letters, digits, '.' and '-')")
state_key_prefix = _string(
    _STATE_KEY_PREFIX,
    "a key prefix such as 'terraform/s3-detector': letters, digits and !_.*'()-/, "
    "no leading or trailing '/', no empty or '..' part",
)

# The [state] table; keys are top-level ("state.bucket"), not per account.
STATE_SCHEMA: dict[str, Setting] = {
    "backend": Setting(
        "local",
        _choice(STATE_BACKENDS),
        "local|s3",
        "local: a terraform.<stack>.tfstate file in the repo root; s3: one object per stack in `bucket`",
    ),
    "bucket": Setting(
        None, state_bucket, "S3 bucket name", "with s3: the (existing, versioned) state bucket"
    ),
    "key_prefix": Setting(
        "s3-public-exposure-detector",
        state_key_prefix,
        "key prefix, no leading '/'",
        "with s3: each stack's state is `<key_prefix>/<stack name>.tfstate`",
    ),
    "region": Setting(None, _region, "AWS region", "with s3: the state bucket's region"),
}


@dataclass(frozen=True)
class AccountConfig:
    """One account's validated settings (see :data:`SCHEMA` for each one's meaning)."""

    name: str
    account_id: str
    home_region: str
    watch_regions: tuple[str, ...]
    deploy_role_arn: str | None
    environment: str
    log_level: str
    alert_emails: tuple[str, ...]
    alert_https_endpoints: tuple[str, ...]
    trusted_principals: tuple[str, ...]
    actor_history_seconds: int
    security_hub: bool
    chat: bool
    eventbridge: bool
    review_enabled: bool
    review_log_buckets: tuple[str, ...]
    review_late_margin_minutes: int
    remediation_mode: str
    allow_account_remediation: bool
    exception_buckets: tuple[str, ...]
    approval_tag: str
    max_approval_days: int
    sensitive_tag: str
    sensitive_tag_values: tuple[str, ...]
    create_trail: bool
    trail_kms_encryption: bool
    trail_log_retention_days: int
    object_acl_data_events: bool
    object_write_data_events: bool
    reserved_concurrency: int
    function_log_retention_days: int
    function_timeout_seconds: int
    sweep_enabled: bool
    sweep_interval_minutes: int
    sweep_fanout_threshold: int
    sweep_threads: int
    sweep_worker_concurrency: int
    sweep_digest_hour: int

    @property
    def partition(self) -> str:
        """The ARN partition of the home region (``aws``, ``aws-cn``, ``aws-us-gov``)."""
        return known_regions()[self.home_region]

    @property
    def regions(self) -> tuple[str, ...]:
        """Every watched region, home region first."""
        return (self.home_region, *(r for r in self.watch_regions if r != self.home_region))


@dataclass(frozen=True)
class StateConfig:
    """The validated ``[state]`` table (see :data:`STATE_SCHEMA`); the default is today's local state."""

    backend: str = "local"
    bucket: str | None = None
    key_prefix: str = "s3-public-exposure-detector"
    region: str | None = None

    def key(self, stack: str) -> str:
        """The state object's key for ``stack`` (s3 backend): ``<key_prefix>/<stack>.tfstate``."""
        return f"{self.key_prefix}/{stack}.tfstate"


@dataclass(frozen=True)
class DetectorConfig:
    """The whole file: one entry per account, in file order, and where their state lives."""

    accounts: tuple[AccountConfig, ...]
    source: str
    state: StateConfig = StateConfig()

    def account(self, name: str) -> AccountConfig:
        """The account whose stack is called ``name``."""
        for account in self.accounts:
            if account.name == name:
                return account
        raise KeyError(f"{self.source}: no account named {name!r}")


_FIELD_NAMES = {
    "alerts.emails": "alert_emails",
    "alerts.https_endpoints": "alert_https_endpoints",
    "alerts.trusted_principals": "trusted_principals",
    "alerts.actor_history_seconds": "actor_history_seconds",
    "alerts.security_hub": "security_hub",
    "alerts.chat": "chat",
    "alerts.eventbridge": "eventbridge",
    "review.enabled": "review_enabled",
    "review.log_buckets": "review_log_buckets",
    "review.late_margin_minutes": "review_late_margin_minutes",
    "remediation.mode": "remediation_mode",
    "remediation.allow_account_level": "allow_account_remediation",
    "exceptions.buckets": "exception_buckets",
    "exceptions.approval_tag": "approval_tag",
    "exceptions.max_approval_days": "max_approval_days",
    "exceptions.sensitive_tag": "sensitive_tag",
    "exceptions.sensitive_tag_values": "sensitive_tag_values",
    "trail.create": "create_trail",
    "trail.kms_encryption": "trail_kms_encryption",
    "trail.log_retention_days": "trail_log_retention_days",
    "trail.object_acl_data_events": "object_acl_data_events",
    "trail.object_write_data_events": "object_write_data_events",
    "function.reserved_concurrency": "reserved_concurrency",
    "function.log_retention_days": "function_log_retention_days",
    "function.timeout_seconds": "function_timeout_seconds",
    "sweep.enabled": "sweep_enabled",
    "sweep.interval_minutes": "sweep_interval_minutes",
    "sweep.fanout_threshold": "sweep_fanout_threshold",
    "sweep.threads": "sweep_threads",
    "sweep.worker_concurrency": "sweep_worker_concurrency",
    "sweep.digest_hour_utc": "sweep_digest_hour",
}


def _flatten(entry: dict[str, Any], where: str) -> dict[str, Any]:
    """``{"alerts": {"emails": [...]}}`` -> ``{"alerts.emails": [...]}``; unknown keys are errors."""
    flat: dict[str, Any] = {}
    for key, value in entry.items():
        if key in TABLES:
            if not isinstance(value, dict):
                raise ConfigError(f"{where}.{key}: expected a table ([accounts.{key}]), got {value!r}")
            for sub, sub_value in value.items():
                flat[f"{key}.{sub}"] = sub_value
        else:
            flat[key] = value
    for key in flat:
        if key not in SCHEMA:
            known = ", ".join(k for k in SCHEMA if k.split(".")[0] == key.split(".")[0] or "." not in key)
            hint = f"; did you mean one of: {known}" if known else ""
            raise ConfigError(f"{where}.{key}: unknown key{hint}")
    return flat


def parse_account(entry: Any, where: str) -> AccountConfig:
    """Validate one ``[[accounts]]`` entry; ``where`` prefixes error messages (file and index)."""
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a table of settings, got {entry!r}")
    values = _checked(SCHEMA, _flatten(entry, where), f"{where}.")
    _cross_checks(values, where)
    return AccountConfig(**{_FIELD_NAMES.get(key, key): value for key, value in values.items()})


def _checked(schema: dict[str, Setting], table: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Each schema key's checked value from ``table``, or its default; errors name ``prefix`` + key."""
    values: dict[str, Any] = {}
    for key, setting in schema.items():
        label = f"{prefix}{key}"
        if key not in table:
            if setting.default is REQUIRED:
                raise ConfigError(f"{label}: missing; expected {setting.expected}")
            values[key] = setting.default
            continue
        try:
            values[key] = setting.check(table[key])
        except ValueError as exc:
            raise ConfigError(f"{label}: expected {exc}, got {table[key]!r}") from None
    return values


def _cross_checks(values: dict[str, Any], where: str) -> None:
    """Rules that tie two settings together."""
    role = values["deploy_role_arn"]
    matched = _ROLE_ARN.match(role) if role else None  # a role given was checked against _ROLE_ARN
    if matched and matched.group(2) != values["account_id"]:
        raise ConfigError(
            f"{where}.deploy_role_arn: expected a role in account {values['account_id']}, got {role!r}"
        )
    home_partition = known_regions()[values["home_region"]]
    for region in values["watch_regions"]:
        if known_regions()[region] != home_partition:
            raise ConfigError(
                f"{where}.watch_regions: expected regions of the home region's partition ({home_partition}), "
                f"got {region!r}"
            )
    if not values["trail.create"] and (
        values["trail.object_acl_data_events"] or values["trail.object_write_data_events"]
    ):
        raise ConfigError(
            f"{where}.trail.object_acl_data_events: expected false when trail.create = false "
            "(data events are configured on the existing trail itself)"
        )
    if values["remediation.allow_account_level"] and values["remediation.mode"] != "enforce":
        raise ConfigError(
            f"{where}.remediation.allow_account_level: expected false unless remediation.mode = 'enforce', "
            f"got true with mode {values['remediation.mode']!r}"
        )


def parse_config(data: Any, source: str = "detector.toml") -> DetectorConfig:
    """Validate a parsed TOML document into a :class:`DetectorConfig`."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a TOML document")
    unknown = sorted(set(data) - {"version", "state", "accounts"})
    if unknown:
        raise ConfigError(
            f"{source}: {unknown[0]}: unknown key; expected only 'version', [state] and [[accounts]]"
        )
    if data.get("version", 1) != 1:
        raise ConfigError(f"{source}: version: expected 1, got {data.get('version')!r}")
    entries = data.get("accounts")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{source}: accounts: expected at least one [[accounts]] table")
    accounts = tuple(parse_account(entry, f"{source}: accounts[{i}]") for i, entry in enumerate(entries))
    for key in ("name", "account_id"):
        seen: set[str] = set()
        for index, account in enumerate(accounts):
            value = getattr(account, key)
            if value in seen:
                raise ConfigError(
                    f"{source}: accounts[{index}].{key}: expected a unique value, got {value!r} twice"
                )
            seen.add(value)
    return DetectorConfig(accounts=accounts, source=source, state=parse_state(data.get("state", {}), source))


def parse_state(table: Any, source: str = "detector.toml") -> StateConfig:
    """Validate the ``[state]`` table; errors read ``<source>: state.<key>: ...``."""
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: state: expected a table ([state]), got {table!r}")
    for key in table:
        if key not in STATE_SCHEMA:
            known = ", ".join(STATE_SCHEMA)
            raise ConfigError(f"{source}: state.{key}: unknown key; expected one of: {known}")
    values = _checked(STATE_SCHEMA, table, f"{source}: state.")
    if values["backend"] == "s3":
        for key in ("bucket", "region"):
            if values[key] is None:
                raise ConfigError(
                    f'{source}: state.{key}: required when state.backend = "s3"; '
                    f"expected {STATE_SCHEMA[key].expected}"
                )
    else:
        for key in ("bucket", "region", "key_prefix"):
            if key in table:
                raise ConfigError(
                    f'{source}: state.{key}: only used when state.backend = "s3"; '
                    "remove it or set the backend"
                )
    return StateConfig(**values)


def load_config(path: str | Path = DEFAULT_CONFIG_PATH) -> DetectorConfig:
    """Read and validate the config file at ``path``."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(data, source=path.name)


def reference_markdown() -> str:
    """The config reference as a Markdown table, for the README."""
    lines = ["| key (in `[[accounts]]`) | default | expected | meaning |", "|---|---|---|---|"]
    for key, setting in SCHEMA.items():
        default = "required" if setting.default is REQUIRED else f"`{_toml_value(setting.default)}`"
        lines.append(f"| `{key}` | {default} | {setting.expected} | {setting.doc} |")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def state_reference_markdown() -> str:
    """The ``[state]`` reference as a Markdown table, for the README."""
    lines = ["| key (in `[state]`) | default | expected | meaning |", "|---|---|---|---|"]
    for key, setting in STATE_SCHEMA.items():
        lines.append(f"| `{key}` | `{_toml_value(setting.default)}` | {setting.expected} | {setting.doc} |")
    return "\n".join(lines)


def blind_spot_warnings(config: DetectorConfig) -> list[str]:
    """Per account, the exposure paths it cannot see: calls AWS records only in regions it does
    not watch (``RECORDED_IN`` in the rule registry), with what to add."""
    return [
        f"{account.name}: {spot}; add that region to watch_regions to detect it"
        for account in config.accounts
        for spot in blind_spots(account.regions)
    ]


if __name__ == "__main__":
    if "--reference" in sys.argv:
        print(reference_markdown())
        print()
        print(state_reference_markdown())
    else:
        config = load_config(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_CONFIG_PATH)
        names = ", ".join(account.name for account in config.accounts)
        print(f"{config.source}: {len(config.accounts)} account(s) OK: {names}")
        for warning in blind_spot_warnings(config):
            print(f"warning: {warning}", file=sys.stderr)
