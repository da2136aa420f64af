"""The response Lambda's pure parts: settings, approvals, subjects, commands, the IAM list."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from handlers.detection.approvals import check_approval, parse_expiry
from handlers.response import permissions
from handlers.response.alert import lookup_username, safe_subject
from handlers.response.remediation import account_undo_command, bucket_undo_command
from handlers.response.response_config import load_settings

BASE_ENV = {
    "ALERT_TOPIC_ARN": "arn:aws:sns:eu-west-1:111122223333:alerts",
    "EXPECTED_ACCOUNT_ID": "111122223333",
    "IDEMPOTENCY_TABLE": "idem",
}


def test_settings_defaults() -> None:
    settings = load_settings(BASE_ENV)
    assert settings.remediation_mode == "off" and settings.allow_account_remediation is False
    assert settings.approval_tag == "public-access-approved-until"
    assert settings.sensitive_tag == "data-classification"
    assert settings.sensitive_tag_values == {"confidential", "restricted", "sensitive"}
    assert settings.exception_buckets == () and settings.production is False
    assert settings.topic_region == "eu-west-1" and settings.account_name == "111122223333"


@pytest.mark.parametrize(("name", "production"), [("production", True), ("Prod", True), ("staging", False)])
def test_production_environments(name: str, production: bool) -> None:
    assert load_settings({**BASE_ENV, "ENVIRONMENT": name}).production is production


def test_settings_parse_lists_and_flags() -> None:
    settings = load_settings(
        {
            **BASE_ENV,
            "REMEDIATION_MODE": "Enforce",
            "ALLOW_ACCOUNT_REMEDIATION": "TRUE",
            "EXCEPTION_BUCKETS": '["www-*", "assets"]',
            "SENSITIVE_TAG_VALUES": "PII, secret",
        }
    )
    assert settings.remediation_mode == "enforce" and settings.allow_account_remediation
    assert settings.exception_buckets == ("www-*", "assets")
    assert settings.sensitive_tag_values == {"pii", "secret"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-03-01", datetime(2026, 3, 2, tzinfo=UTC)),  # a date lasts through its day
        ("2026-03-01T10:00:00Z", datetime(2026, 3, 1, 10, tzinfo=UTC)),
        ("2026-03-01T10:00:00", datetime(2026, 3, 1, 10, tzinfo=UTC)),  # naive means UTC
        ("2026-03-01T12:00:00+02:00", datetime(2026, 3, 1, 10, tzinfo=UTC)),
        ("soon", None),
        ("", None),
    ],
)
def test_parse_expiry(value: str, expected: datetime | None) -> None:
    assert parse_expiry(value) == expected


def test_approval_on_the_last_day_is_still_valid() -> None:
    noon = datetime(2026, 3, 1, 12, tzinfo=UTC)
    tags = {"public-access-approved-until": "2026-03-01"}
    approval = check_approval("b", tags, allow_list=(), approval_tag="public-access-approved-until", now=noon)
    assert approval.approved and approval.expires == "2026-03-02T00:00:00Z"


def test_unreadable_tags_still_honour_the_allow_list() -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    assert check_approval("www-a", None, allow_list=("www-*",), approval_tag="t", now=now).approved
    unknown = check_approval("data", None, allow_list=("www-*",), approval_tag="t", now=now)
    assert not unknown.approved and "could not be read" in unknown.reason


def test_safe_subject_strips_control_and_non_ascii() -> None:
    assert safe_subject("[HIGH]\tS3 bucket\r\nx caf\u00e9 \u2603") == "[HIGH] S3 bucket x cafe"


@pytest.mark.parametrize(
    ("actor", "user"),
    [
        ("arn:aws:iam::111122223333:user/alice", "alice"),
        ("arn:aws:sts::111122223333:assumed-role/admin/bob@example.com", "bob@example.com"),
        ("arn:aws:iam::111122223333:root", "root"),
        ("AIDAEXAMPLE", None),
        (None, None),
    ],
)
def test_lookup_username(actor: str | None, user: str | None) -> None:
    assert lookup_username(actor) == user


def test_undo_commands_restore_exactly_the_previous_state() -> None:
    previous = {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": False,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": False,
    }
    assert bucket_undo_command("acme-b", "111122223333", previous, "set") == (
        "aws s3api put-public-access-block --bucket acme-b --expected-bucket-owner 111122223333 "
        "--public-access-block-configuration "
        "BlockPublicAcls=true,IgnorePublicAcls=false,BlockPublicPolicy=true,RestrictPublicBuckets=false"
    )
    assert bucket_undo_command("acme-b", "111122223333", None, "not-set") == (
        "aws s3api delete-public-access-block --bucket acme-b --expected-bucket-owner 111122223333"
    )
    # a name that cannot be a bucket (here: too short) gives no command at all, never a raw paste
    assert bucket_undo_command("b", "111122223333", None, "not-set") is None
    assert bucket_undo_command("a b;$(id)", "111122223333", previous, "set") is None
    assert account_undo_command("111122223333", None, "not-set") == (
        "aws s3control delete-public-access-block --account-id 111122223333"
    )


def test_permission_list_per_mode() -> None:
    def ops(mode: str, allow: bool = False) -> set[tuple[str, str]]:
        return {(c.service, c.operation) for c in permissions.calls_for(mode, allow)}

    assert ("s3", "PutPublicAccessBlock") not in ops("off") | ops("dry-run")
    assert ("s3", "PutPublicAccessBlock") in ops("enforce")
    assert ("s3control", "PutPublicAccessBlock") not in ops("enforce")
    assert ("s3control", "PutPublicAccessBlock") in ops("enforce", allow=True)
    assert ("s3control", "PutPublicAccessBlock") not in ops("dry-run", allow=True)
    with pytest.raises(ValueError, match="unknown remediation mode"):
        permissions.calls_for("yolo")


def test_clients_have_bounded_timeouts_and_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    from handlers.response import aws_clients

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    config = aws_clients.client("s3", "eu-west-1").meta.config
    assert (config.connect_timeout, config.read_timeout) == (2, 5)
    assert config.retries == {"total_max_attempts": 3, "mode": "standard"}
    assert aws_clients.client("s3", "eu-west-1") is aws_clients.client("s3", "eu-west-1")


@pytest.mark.parametrize(
    ("case_id", "expected"),
    [
        ("access_point_policy/truncated-policy", "S3 access point public-catalog possibly made public"),
        (
            "access_point_policy/public-accessdenied",
            "Failed attempt to expose S3 access point public-catalog (PutAccessPointPolicy)",
        ),
        ("access_point_policy/principal-star-getobject", "S3 access point public-catalog made public (read)"),
    ],
)
def test_access_point_headlines_name_the_access_point_and_hedge_when_undetermined(case_id, expected):
    from demo.dataset_loader import load_cases
    from handlers.detection.classify import classify
    from handlers.response.alert import headline
    from handlers.response.exposure import not_checked

    (case,) = [c for c in load_cases() if c.id == case_id]
    (finding,) = classify(case.record)
    assert headline(finding, not_checked("access point")) == expected
