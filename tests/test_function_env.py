"""One name for each variable: the synthesized environments against handlers/response/function_env.py.

The stack writes a function's environment and the handler reads it; both go through
:mod:`handlers.response.function_env`. These tests fail when a synthesized function carries a variable the
handler's settings do not declare, lacks one they require, or when the handler reads (or ignores)
a name the definition lists.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from handlers.response import function_env
from handlers.response.decision_log import (
    RESERVED,
    JsonLineFormatter,
    decision_fields,
    log_decision,
    record_fields,
)
from handlers.response.function_env import OPTIONAL, RUNTIME_REGION, EnvironmentMismatch, environment
from handlers.response.response_config import ConfigError, load_settings
from handlers.review.function import load_review_settings
from handlers.sweep.config import load_sweep_settings
from stacks.config import load_config, parse_config
from stacks.response_function import LAMBDA_LOG_LEVELS
from stacks.synth import synth_config

# Every optional variable is written by one of these: chat, the review with a named log bucket.
EVERYTHING_ON = {
    "name": "full",
    "account_id": "111111111111",
    "home_region": "eu-west-1",
    "log_level": "WARNING",
    "alerts": {"security_hub": True, "chat": True, "eventbridge": True},
    "review": {"log_buckets": ["access-logs-*", "central-access-logs"]},
}
NO_REVIEW = {
    "name": "lean",
    "account_id": "555555555555",
    "home_region": "eu-west-1",
    "review": {"enabled": False},
}

DEFINITIONS: dict[str, frozenset[str]] = {
    "handlers.response.function.handler": function_env.RESPONSE,
    "handlers.sweep.function.handler": function_env.SWEEP,
    "handlers.review.function.handler": function_env.REVIEW,
}
LOADERS: dict[str, Callable[[Mapping[str, str]], Any]] = {
    "handlers.response.function.handler": load_settings,
    "handlers.sweep.function.handler": load_sweep_settings,
    "handlers.review.function.handler": load_review_settings,
}


@pytest.fixture(scope="module")
def functions(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str, dict[str, Any]]]:
    """(stack, handler, function block) for every function of every synthesized stack."""
    out = tmp_path_factory.mktemp("function-env")
    stacks = synth_config(load_config(), out / "repo") | synth_config(
        parse_config({"accounts": [EVERYTHING_ON, NO_REVIEW]}), out / "variants"
    )
    return [
        (name, function["handler"], function)
        for name, stack in stacks.items()
        for function in stack["resource"]["aws_lambda_function"].values()
    ]


def test_each_function_is_written_exactly_what_its_handler_reads(functions) -> None:
    assert {handler for _, handler, _ in functions} == set(DEFINITIONS)
    for stack, handler, function in functions:
        written = set(function["environment"]["variables"])
        names = DEFINITIONS[handler]
        assert written <= names, f"{stack} {handler}: written but never read: {sorted(written - names)}"
        missing = names - OPTIONAL - written
        assert not missing, f"{stack} {handler}: read but never written: {sorted(missing)}"


def test_every_optional_variable_is_written_somewhere(functions) -> None:
    written = set().union(*(set(f["environment"]["variables"]) for _, _, f in functions))
    assert written >= OPTIONAL


def test_every_function_logs_json_at_the_configured_level(functions) -> None:
    for stack, handler, function in functions:
        config = function["logging_config"]
        assert config["log_format"] == "JSON", (stack, handler)
        level = function["environment"]["variables"]["LOG_LEVEL"]
        assert config["application_log_level"] == LAMBDA_LOG_LEVELS[level], (stack, handler)
        assert config["system_log_level"] in ("INFO", "WARN"), (stack, handler)


# --- the handler side: reads every declared name and nothing else -----------------------------------


def _baseline(handler: str) -> dict[str, str]:
    """A valid environment with every declared variable set (concrete values for references)."""
    env = {
        "ALERT_TOPIC_ARN": "arn:aws:sns:eu-west-1:111111111111:alerts",
        "EXPECTED_ACCOUNT_ID": "111111111111",
        "IDEMPOTENCY_TABLE": "seen-events",
        "REMEDIATION_MODE": "dry-run",
        "ALLOW_ACCOUNT_REMEDIATION": "false",
        "ENVIRONMENT": "production",
        "ACCOUNT_NAME": "full",
        "EXCEPTION_BUCKETS": '["site-*"]',
        "MAX_APPROVAL_DAYS": "30",
        "WATCHED_REGIONS": "eu-west-1,us-east-1",
        "SENSITIVE_TAG": "classification",
        "SENSITIVE_TAG_VALUES": "secret",
        "LOG_LEVEL": "INFO",
        "TRUSTED_PRINCIPALS": '["arn:aws:iam::111111111111:role/deploy"]',
        "ACTOR_HISTORY_SECONDS": "5",
        "SECURITY_HUB": "false",
        "DECISION_EVENTS": "false",
        "CHAT_TOPIC_ARN": "arn:aws:sns:eu-west-1:111111111111:chat",
        "REVIEW_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/111111111111/review-requests",
        "TRAIL_NAME": "detector-trail",
        "TRAIL_BUCKET": "detector-trail-logs",
        "TRAIL_KMS_KEY_ARN": "arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "DETECTOR_KMS_KEY_ARN": "arn:aws:kms:eu-west-1:111111111111:key/2234abcd-12ab-34cd-56ef-1234567890ab",
        "APPROVAL_TAG": "approved-until",
        "SWEEP_WORK_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/111111111111/sweep-work",
        "SWEEP_FANOUT_THRESHOLD": "100",
        "SWEEP_THREADS": "4",
        "SWEEP_BATCH_SIZE": "50",
        "SWEEP_DIGEST_HOUR": "9",
        "REVIEW_LATE_MARGIN_MINUTES": "30",
        "REVIEW_LOG_TARGET_BUCKET": "central-access-logs",
    }
    return {name: env[name] for name in DEFINITIONS[handler]}


class Recording(Mapping[str, str]):
    """An environment that remembers which names were read."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values, self.read = values, set[str]()

    def __getitem__(self, key: str) -> str:
        self.read.add(str(key))
        return self.values[key]

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(str(key))
        return self.values.get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


@pytest.mark.parametrize("handler", sorted(DEFINITIONS))
def test_the_handler_reads_only_declared_names(handler: str) -> None:
    env = Recording(_baseline(handler))
    LOADERS[handler](env)
    assert env.read - {RUNTIME_REGION} <= DEFINITIONS[handler], sorted(env.read - DEFINITIONS[handler])


@pytest.mark.parametrize(
    ("handler", "name"), [(h, n) for h in sorted(DEFINITIONS) for n in sorted(DEFINITIONS[h])]
)
def test_the_handler_uses_every_declared_name(handler: str, name: str) -> None:
    """Changing one variable changes the settings (or is refused): the name is not written in vain."""
    env = _baseline(handler)
    before = LOADERS[handler](env)
    try:
        after = LOADERS[handler]({**env, name: "Changed-Value!"})
    except ConfigError as exc:
        assert str(exc).startswith(name), exc  # the message names the variable
        return
    assert after != before, f"{handler} ignores {name}"


def test_environment_refuses_unknown_and_missing_names() -> None:
    full = _baseline("handlers.response.function.handler")
    assert environment("f", function_env.RESPONSE, full) == full
    without_optional = {k: v for k, v in full.items() if k not in OPTIONAL}
    assert environment("f", function_env.RESPONSE, without_optional) == without_optional
    with pytest.raises(EnvironmentMismatch, match=r"unknown \['LOGLEVEL'\]"):
        environment("f", function_env.RESPONSE, {**full, "LOGLEVEL": "INFO"})
    with pytest.raises(EnvironmentMismatch, match=r"missing \['ALERT_TOPIC_ARN'\]"):
        environment("f", function_env.RESPONSE, {k: v for k, v in full.items() if k != "ALERT_TOPIC_ARN"})


# --- decision lines -------------------------------------------------------------------------------------


def test_a_decision_is_one_json_object_with_its_fields_at_top_level() -> None:
    logger = logging.getLogger("handlers.test-decision-log")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep()
    logger.addHandler(keep)
    logger.setLevel(logging.INFO)
    try:
        # A field named like a LogRecord attribute or a runtime key must neither raise nor vanish.
        log_decision(logger, "finding", bucket="b", name="n", level="l", message="m", when=object())
    finally:
        logger.removeHandler(keep)
    (record,) = records
    fields = record_fields(record)
    assert fields["decision"] == "finding" and fields["bucket"] == "b"
    assert (fields["name_"], fields["level_"], fields["message_"]) == ("n", "l", "m")
    # Lambda's runtime encodes extras with a plain JSONEncoder (no fallback): they must be JSON already.
    json.JSONEncoder().encode(fields)
    line = json.loads(JsonLineFormatter().format(record))
    assert line["message"] == "finding" and line["decision"] == "finding" and line["bucket"] == "b"
    assert line["level"] == "INFO" and line["timestamp"].endswith("Z")


def test_decision_fields_never_use_a_reserved_key() -> None:
    fields = decision_fields("x", dict.fromkeys(RESERVED, 1))
    assert not set(fields) & RESERVED
