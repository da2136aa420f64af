"""Safe accessors for CloudTrail records of any event version or state of damage."""

from __future__ import annotations

import pytest

from handlers.records import (
    account_id,
    actor,
    as_list,
    as_text,
    bucket_name,
    client_kind,
    deep_get,
    failed,
    get_ci,
    object_key,
    request_parameters,
)


def test_deep_get_follows_dicts_and_defaults_on_anything_else() -> None:
    record = {"a": {"b": {"c": 1}}, "n": None, "s": "text"}
    assert deep_get(record, "a", "b", "c") == 1
    assert deep_get(record, "a", "x", default="d") == "d"
    assert deep_get(record, "n", "x", default=0) == 0
    assert deep_get(record, "s", "x") is None
    assert deep_get(None, "a", default=[]) == []
    assert deep_get(record, "n", default="missing") == "missing"


def test_get_ci_prefers_exact_key_then_any_case() -> None:
    assert get_ci({"Host": "new", "host": "old"}, "host") == "old"
    assert get_ci({"Host": "new"}, "host") == "new"
    assert get_ci({"X-Amz-Acl": "public-read"}, "x-amz-acl") == "public-read"
    assert get_ci({1: "int key"}, "1") is None
    assert get_ci(["not", "a", "dict"], "x", default="d") == "d"


@pytest.mark.parametrize(
    ("value", "expected"), [(None, []), ([], []), ("a", ["a"]), ([1, 2], [1, 2]), ({"k": 1}, [{"k": 1}])]
)
def test_as_list(value: object, expected: list) -> None:
    assert as_list(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("public-read", "public-read"),
        (["public-read"], "public-read"),
        ([""], None),
        (["a", "", "b"], "a,b"),
        ([None, 3], None),
        (True, "True"),
        (12, "12"),
        (None, None),
        ({"k": "v"}, None),
    ],
)
def test_as_text_unwraps_old_list_values(value: object, expected: str | None) -> None:
    assert as_text(value) == expected


@pytest.mark.parametrize("params", [None, "oops", ["x"], 5])
def test_request_parameters_of_a_wrong_type_read_as_empty(params: object) -> None:
    assert request_parameters({"requestParameters": params}) == {}


def test_failed_is_true_only_with_an_error_code() -> None:
    assert failed({"errorCode": "AccessDenied"})
    assert not failed({"errorCode": ""})
    assert not failed({"errorCode": None})
    assert not failed({})


def test_bucket_name_from_parameters_then_resources() -> None:
    resources = [
        {"type": "AWS::S3::Object", "ARN": "arn:aws:s3:::from-resources/key"},
        {"type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::from-resources"},
    ]
    assert (
        bucket_name({"requestParameters": {"bucketName": "from-params"}, "resources": resources})
        == "from-params"
    )
    assert bucket_name({"requestParameters": {"bucketName": ["old-style"]}}) == "old-style"
    assert bucket_name({"requestParameters": None, "resources": resources}) == "from-resources"
    assert bucket_name({"resources": [{"type": "AWS::S3::Bucket", "ARN": "not-an-arn"}]}) is None
    assert bucket_name({"resources": "garbage"}) is None
    assert bucket_name({}) is None


def test_object_key() -> None:
    assert object_key({"requestParameters": {"key": "a/b.txt"}}) == "a/b.txt"
    assert object_key({"requestParameters": {}}) is None


def test_actor_prefers_arn_then_principal_then_service() -> None:
    assert (
        actor({"userIdentity": {"arn": "arn:aws:iam::1:user/a", "principalId": "P"}})
        == "arn:aws:iam::1:user/a"
    )
    assert actor({"userIdentity": {"principalId": "AIDA:x"}}) == "AIDA:x"
    assert (
        actor({"userIdentity": {"type": "AWSService", "invokedBy": "s3.amazonaws.com"}}) == "s3.amazonaws.com"
    )
    assert actor({"userIdentity": {"type": "Root"}}) == "Root"
    assert actor({"userIdentity": "garbage"}) is None


def test_account_id_prefers_recipient_account() -> None:
    assert account_id({"recipientAccountId": "111", "userIdentity": {"accountId": "222"}}) == "111"
    assert account_id({"userIdentity": {"accountId": "222"}}) == "222"
    assert account_id({}) is None


@pytest.mark.parametrize(
    ("agent", "kind"),
    [
        ("[S3Console/0.4, aws-internal/3 aws-sdk-java/1.12.488 Linux/5.10]", "console"),
        ("signin.amazonaws.com", "console"),
        ("[aws-cli/2.15.0 Python/3.11.6 Linux/6.2.0 command/s3api.put-bucket-acl]", "cli"),
        ("[aws-cli/1.16.140 Python/3.7.3 Darwin/18.5.0 botocore/1.12.130]", "cli"),
        (
            "[APN/1.0 HashiCorp/1.0 Terraform/1.6.6 terraform-provider-aws/5.31.0 aws-sdk-go-v2/1.24.0]",
            "terraform",
        ),
        ("[Boto3/1.34.11 md/Botocore#1.34.11 ua/2.0 os/linux]", "sdk"),
        ("cloudformation.amazonaws.com", "aws-service"),
        ("curl/8.4.0", "unknown"),
        (None, "unknown"),
        ("", "unknown"),
    ],
)
def test_client_kind(agent: str | None, kind: str) -> None:
    assert client_kind(agent) == kind
