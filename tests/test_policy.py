"""AWS's "meaning of public" for resource policies, one rule at a time."""

from __future__ import annotations

import json

import pytest

from handlers.detection.policy import (
    PolicyUnreadable,
    analyse_policy,
    load_policy,
    public_principals,
    restricting_condition,
    statement_access,
)

OBJECTS = "arn:aws:s3:::acme-prod-web-assets/*"


def allow(principal: object = "*", action: object = "s3:GetObject", condition: dict | None = None) -> dict:
    statement: dict = {"Effect": "Allow", "Principal": principal, "Action": action, "Resource": OBJECTS}
    if condition is not None:
        statement["Condition"] = condition
    return statement


def doc(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


@pytest.mark.parametrize(
    "principal",
    [
        "*",
        " * ",
        {"AWS": "*"},
        {"AWS": ["arn:aws:iam::702146385519:root", "*"]},
        {"AWS": "arn:aws:iam::*:root"},
    ],
)
def test_public_principal_forms(principal: object) -> None:
    assert analyse_policy(doc(allow(principal))).public


@pytest.mark.parametrize(
    "principal",
    [
        {"AWS": "702146385519"},
        {"AWS": "arn:aws:iam::702146385519:role/analytics"},
        {"AWS": "arn:aws:iam::cloudfront:user/CloudFront Origin Access Identity E1H6RB7UJN5ZIR"},
        {"AWS": "arn:aws:iam::127311923021:root"},
        {"Service": "cloudfront.amazonaws.com"},
        {"CanonicalUser": "7c9e4f2a1b3d5e6f8a0b2c4d6e8f0a1b3c5d7e9f1a2b4c6d8e0f2a4b6c8d0e2f"},
    ],
)
def test_specific_principals_are_not_public(principal: object) -> None:
    assert not analyse_policy(doc(allow(principal))).public


def test_federated_principal_is_public() -> None:
    assert public_principals(allow({"Federated": "cognito-identity.amazonaws.com"})) == {
        "Federated:cognito-identity.amazonaws.com"
    }


def test_not_principal_with_allow_is_public_and_with_deny_is_not() -> None:
    statement = {"Effect": "Allow", "NotPrincipal": {"AWS": "arn:aws:iam::1:role/x"}, "Action": "s3:*"}
    assert analyse_policy(doc(statement)).public
    assert not analyse_policy(doc({**statement, "Effect": "Deny"})).public


def test_deny_statements_never_expose() -> None:
    assert not analyse_policy(doc({**allow(), "Effect": "Deny"})).public


@pytest.mark.parametrize(
    "condition",
    [
        {"StringEquals": {"aws:SourceVpce": "vpce-0a1b2c3d"}},
        {"StringEquals": {"aws:SourceVpc": ["vpc-1", "vpc-2"]}},
        {"StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}},
        {"StringEquals": {"aws:SourceAccount": "318473062105"}},
        {"StringEquals": {"AWS:SourceArn": "arn:aws:cloudfront::318473062105:distribution/E2Q"}},
        {"ArnLike": {"aws:SourceArn": "arn:aws:s3:::acme-prod-web-assets"}},
        {"StringLike": {"aws:SourceOwner": "318473062105"}},
        {"IpAddress": {"aws:SourceIp": "198.51.100.0/24"}},
        {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
        {"IpAddress": {"aws:SourceIp": "203.0.113.7"}},
        {"IpAddress": {"aws:SourceIp": "2001:db8:1234::/48"}},
        {"IpAddress": {"aws:SourceIp": "2001:db8::/32"}},
        {"ForAnyValue:StringEquals": {"aws:SourceVpce": ["vpce-1"]}},
        {"StringEquals": {"s3:DataAccessPointAccount": "318473062105"}},
        {"Bool": {"aws:SecureTransport": "true"}, "StringEquals": {"aws:SourceVpce": "vpce-1"}},
    ],
)
def test_fixed_restricting_conditions_make_a_statement_non_public(condition: dict) -> None:
    assert restricting_condition(condition)
    assert not analyse_policy(doc(allow(condition=condition))).public


@pytest.mark.parametrize(
    "condition",
    [
        {"StringLike": {"aws:SourceVpc": "vpc-*"}},
        {"StringLike": {"aws:SourceVpce": "vpce-?bc"}},
        {"StringEquals": {"aws:SourceAccount": "${aws:PrincipalAccount}"}},
        {"StringLike": {"aws:userid": "AROAEXAMPLEID:*"}},
        {"StringNotEquals": {"aws:SourceVpce": "vpce-1"}},
        {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
        {"Bool": {"aws:SecureTransport": "true"}},
        {"StringEquals": {"s3:prefix": "public/"}},
        {"ForAllValues:StringEquals": {"aws:SourceVpce": ["vpce-1"]}},
        {"StringEqualsIfExists": {"aws:SourceVpce": "vpce-1"}},
        {"Null": {"aws:SourceVpce": "false"}},
        {"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}},
        {"IpAddress": {"aws:SourceIp": "0.0.0.0/1"}},
        {"IpAddress": {"aws:SourceIp": "10.0.0.0/7"}},
        {"IpAddress": {"aws:SourceIp": "2001:db8::/16"}},
        {"IpAddress": {"aws:SourceIp": "2001:db8::/31"}},
        {"IpAddress": {"aws:SourceIp": ["198.51.100.0/24", "0.0.0.0/0"]}},
        {"IpAddress": {"aws:SourceIp": "not-an-ip"}},
        {"StringEquals": {"aws:SourceVpce": []}},
        {"StringEquals": {"aws:SourceVpce": True}},
        {"StringEquals": "aws:SourceVpce"},
    ],
)
def test_conditions_that_restrict_nobody_leave_the_statement_public(condition: dict) -> None:
    assert restricting_condition(condition) is None
    verdict = analyse_policy(doc(allow(condition=condition)))
    assert verdict.public
    assert "does not restrict" in verdict.reasons[0]


def test_one_public_statement_makes_the_policy_public_and_is_named() -> None:
    private = {**allow({"Service": "cloudtrail.amazonaws.com"}), "Sid": "Trail"}
    public = {**allow(), "Sid": "DebugRead"}
    verdict = analyse_policy(doc(private, public))
    assert verdict.public
    assert verdict.principals == {"*"}
    assert len(verdict.reasons) == 1 and "'DebugRead'" in verdict.reasons[0]


@pytest.mark.parametrize(
    ("action", "access"),
    [
        ("s3:GetObject", {"read"}),
        (["s3:GetObject", "s3:PutObject"], {"read", "write"}),
        ("s3:*", {"all"}),
        ("*", {"all"}),
        ("s3:Get*", {"read", "acl-read"}),
        ("s3:PutBucketAcl", {"acl-write"}),
        ("s3:PutBucketPolicy", {"policy-write"}),
        ("s3:GetBucketTagging", {"other"}),
    ],
)
def test_statement_access_levels(action: object, access: set[str]) -> None:
    assert statement_access({"Action": action}) == access


def test_not_action_grants_everything_else() -> None:
    access = statement_access({"NotAction": ["s3:Delete*", "s3:Put*"]})
    assert "read" in access and "write" not in access and "acl-write" not in access


def test_policy_as_json_string_and_single_statement_object() -> None:
    as_string = json.dumps({"Version": "2012-10-17", "Statement": allow()})
    assert analyse_policy(as_string).public


@pytest.mark.parametrize(
    "document",
    [
        None,
        "",
        "   ",
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Princ',
        "[]",
        42,
        {"Version": "2012-10-17"},
        {"Statement": ["not-an-object"]},
    ],
)
def test_unreadable_policies_raise_policy_unreadable(document: object) -> None:
    with pytest.raises(PolicyUnreadable):
        analyse_policy(document)


def test_load_policy_returns_the_parsed_document() -> None:
    assert load_policy('{"Statement": []}') == {"Statement": []}


@pytest.mark.parametrize(
    ("action", "access"),
    [
        ("s3-object-lambda:GetObject", {"read"}),
        ("s3-outposts:PutObject", {"write"}),
        ("S3-Outposts:Get*", {"read", "acl-read"}),
        ("s3-outposts:*", {"all"}),
        ("s3-object-lambda:WriteGetObjectResponse", {"other"}),
    ],
)
def test_object_lambda_and_outposts_actions_read_as_the_s3_actions_they_are(action: str, access: set) -> None:
    assert set(analyse_policy(doc(allow("*", action))).access) == access
