"""detector.toml validation: every bad value stops synth with a message naming the field and the form."""

from __future__ import annotations

import copy
import tomllib

import pytest

from stacks.config import (
    DEFAULT_CONFIG_PATH,
    SCHEMA,
    ConfigError,
    load_config,
    parse_config,
    reference_markdown,
)

MINIMAL = {"accounts": [{"name": "prod", "account_id": "123456789012", "home_region": "eu-west-1"}]}


def with_account(**changes: object) -> dict:
    """MINIMAL with the first account's keys changed (a dotted key sets a table entry)."""
    data = copy.deepcopy(MINIMAL)
    account = data["accounts"][0]
    for key, value in changes.items():
        if "__" in key:
            table, sub = key.split("__", 1)
            account.setdefault(table, {})[sub] = value
        else:
            account[key] = value
    return data


def test_the_repo_config_is_valid():
    config = load_config(DEFAULT_CONFIG_PATH)
    assert [a.name for a in config.accounts] == ["security-prod", "sandbox"]


def test_defaults_fill_every_optional_setting():
    account = parse_config(MINIMAL).accounts[0]
    assert account.remediation_mode == "off"
    assert account.allow_account_remediation is False
    assert account.create_trail is True
    assert account.object_acl_data_events is False
    assert account.approval_tag == "public-access-approved-until"
    assert account.sensitive_tag == "data-classification"
    assert account.sensitive_tag_values == ("confidential", "restricted", "sensitive")
    assert account.regions == ("eu-west-1",)
    assert account.partition == "aws"


def test_sweep_defaults_hourly_and_can_be_tuned():
    account = parse_config(MINIMAL).accounts[0]
    assert account.sweep_enabled is True
    assert account.sweep_interval_minutes == 60
    assert account.sweep_fanout_threshold == 3000
    assert account.sweep_threads == 16
    assert account.sweep_worker_concurrency == 4
    assert account.sweep_digest_hour == 8
    tuned = parse_config(
        with_account(
            sweep__enabled=False,
            sweep__interval_minutes=720,
            sweep__fanout_threshold=500,
            sweep__threads=32,
            sweep__worker_concurrency=10,
            sweep__digest_hour_utc=0,
        )
    ).accounts[0]
    assert (
        tuned.sweep_enabled,
        tuned.sweep_interval_minutes,
        tuned.sweep_fanout_threshold,
        tuned.sweep_threads,
        tuned.sweep_worker_concurrency,
        tuned.sweep_digest_hour,
    ) == (False, 720, 500, 32, 10, 0)


def test_home_region_is_always_watched_and_first():
    account = parse_config(with_account(watch_regions=["us-east-1", "eu-west-1"])).accounts[0]
    assert account.regions == ("eu-west-1", "us-east-1")


@pytest.mark.parametrize(
    ("changes", "field", "expected"),
    [
        pytest.param({"account_id": "12345"}, "account_id", "12-digit account id", id="short-account-id"),
        # A regex "$" matches before a final newline: the whole value must match.
        pytest.param(
            {"account_id": "123456789012\n"}, "account_id", "12-digit account id", id="newline-account-id"
        ),
        pytest.param({"account_id": 123456789012}, "account_id", "in quotes", id="account-id-as-integer"),
        pytest.param(
            {"remediation__mode": "auto"},
            "remediation.mode",
            "'off', 'dry-run', 'enforce'",
            id="unknown-mode",
        ),
        pytest.param({"home_region": "eu-west-9"}, "home_region", "known AWS region", id="unknown-region"),
        pytest.param(
            {"watch_regions": ["us-east-1", "mars-1"]},
            "watch_regions",
            "item 1 ('mars-1')",
            id="unknown-watch-region",
        ),
        pytest.param(
            {"alerts__emails": ["secops.example.com"]}, "alerts.emails", "email address", id="malformed-email"
        ),
        pytest.param(
            {"alerts__https_endpoints": ["http://x.example"]},
            "alerts.https_endpoints",
            "https://",
            id="plain-http-endpoint",
        ),
        pytest.param({"colour": "blue"}, "colour", "unknown key", id="unknown-key"),
        pytest.param({"trail__kms": True}, "trail.kms", "unknown key", id="unknown-key-in-table"),
        pytest.param({"name": "Prod_Account"}, "name", "lower-case letters", id="bad-stack-name"),
        pytest.param(
            {"deploy_role_arn": "arn:aws:iam::999999999999:role/x"},
            "deploy_role_arn",
            "role in account 123456789012",
            id="role-in-another-account",
        ),
        pytest.param({"trail__create": "yes"}, "trail.create", "true or false", id="boolean-as-string"),
        pytest.param(
            {"function__log_retention_days": 42},
            "function.log_retention_days",
            "one of 1, 3",
            id="bad-retention",
        ),
        pytest.param(
            {"remediation__allow_account_level": True},
            "remediation.allow_account_level",
            "unless remediation.mode = 'enforce'",
            id="account-level-without-enforce",
        ),
        pytest.param(
            {"trail__create": False, "trail__object_acl_data_events": True},
            "trail.object_acl_data_events",
            "trail.create = false",
            id="data-events-on-existing-trail",
        ),
        pytest.param(
            {"exceptions__buckets": ["My Bucket"]},
            "exceptions.buckets",
            "bucket name or glob",
            id="bad-bucket-glob",
        ),
        pytest.param(
            {"watch_regions": ["cn-north-1"]}, "watch_regions", "partition", id="region-of-another-partition"
        ),
        pytest.param({"sweep__enabled": "on"}, "sweep.enabled", "true or false", id="sweep-enabled-string"),
        pytest.param(
            {"sweep__interval_minutes": 5}, "sweep.interval_minutes", "from 15 to 1440", id="sweep-too-often"
        ),
        pytest.param(
            {"sweep__interval_minutes": 2880},
            "sweep.interval_minutes",
            "from 15 to 1440",
            id="sweep-too-rare-for-its-alarm",
        ),
        pytest.param(
            {"sweep__fanout_threshold": 10},
            "sweep.fanout_threshold",
            "from 100 to 1000000",
            id="fanout-threshold-too-low",
        ),
        pytest.param({"sweep__threads": 0}, "sweep.threads", "from 1 to 64", id="no-sweep-threads"),
        pytest.param(
            {"sweep__worker_concurrency": 1},
            "sweep.worker_concurrency",
            "from 2 to 50",
            id="worker-concurrency-below-sqs-minimum",
        ),
        pytest.param(
            {"sweep__digest_hour_utc": 24}, "sweep.digest_hour_utc", "from 0 to 23", id="digest-hour-24"
        ),
        pytest.param({"sweep__schedule": "hourly"}, "sweep.schedule", "unknown key", id="unknown-sweep-key"),
    ],
)
def test_bad_values_name_the_field_and_the_expected_form(changes, field, expected):
    with pytest.raises(ConfigError) as error:
        parse_config(with_account(**changes), source="detector.toml")
    message = str(error.value)
    assert message.startswith("detector.toml: accounts[0]."), message
    assert f"accounts[0].{field}:" in message, message
    assert expected in message, message


def test_missing_required_setting():
    data = copy.deepcopy(MINIMAL)
    del data["accounts"][0]["home_region"]
    with pytest.raises(ConfigError, match=r"accounts\[0\]\.home_region: missing; expected AWS region"):
        parse_config(data)


def test_duplicate_names_and_accounts_are_refused():
    data = copy.deepcopy(MINIMAL)
    data["accounts"].append(copy.deepcopy(data["accounts"][0]) | {"account_id": "210987654321"})
    with pytest.raises(ConfigError, match=r"accounts\[1\]\.name: expected a unique value"):
        parse_config(data)


def test_unknown_top_level_key_and_empty_file():
    with pytest.raises(ConfigError, match="accountz: unknown key"):
        parse_config({"accountz": []})
    with pytest.raises(ConfigError, match=r"accounts: expected at least one \[\[accounts\]\]"):
        parse_config({})


def test_file_errors_name_the_file(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("[[accounts]\n")
    with pytest.raises(ConfigError, match=r"broken\.toml: not valid TOML"):
        load_config(broken)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.toml")


def test_repo_file_sets_only_known_keys():
    # The example file documents the format: every key in it must be one SCHEMA knows.
    data = tomllib.loads(DEFAULT_CONFIG_PATH.read_text())
    for account in data["accounts"]:
        for key, value in account.items():
            keys = [f"{key}.{sub}" for sub in value] if isinstance(value, dict) else [key]
            assert set(keys) <= set(SCHEMA), keys


def test_reference_lists_every_setting():
    reference = reference_markdown()
    for key in SCHEMA:
        assert f"| `{key}` |" in reference
