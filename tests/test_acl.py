"""Public grants in S3 ACLs, in the body, canned-header and grant-header forms."""

from __future__ import annotations

import pytest

from handlers.detection.acl import analyse_acl_request, public_group

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTH_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
LOG_DELIVERY = "http://acs.amazonaws.com/groups/s3/LogDelivery"
OWNER = "7c9e4f2a1b3d5e6f8a0b2c4d6e8f0a1b3c5d7e9f1a2b4c6d8e0f2a4b6c8d0e2f"


def body(*grants: dict) -> dict:
    grant = grants[0] if len(grants) == 1 else list(grants)
    return {"AccessControlPolicy": {"Owner": {"ID": OWNER}, "AccessControlList": {"Grant": grant}}}


def group(uri: str, permission: str) -> dict:
    return {"Grantee": {"xsi:type": "Group", "URI": uri}, "Permission": permission}


def user(permission: str = "FULL_CONTROL") -> dict:
    return {"Grantee": {"xsi:type": "CanonicalUser", "ID": OWNER}, "Permission": permission}


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (ALL_USERS, "AllUsers"),
        (AUTH_USERS, "AuthenticatedUsers"),
        ("https://acs.amazonaws.com/groups/global/AllUsers/", "AllUsers"),
        ("HTTP://ACS.AMAZONAWS.COM/GROUPS/GLOBAL/ALLUSERS", "AllUsers"),
        ([ALL_USERS], "AllUsers"),
        (LOG_DELIVERY, None),
        ("http://evil.example/groups/global/AllUsers", None),
        (None, None),
        (7, None),
    ],
)
def test_public_group(uri: object, expected: str | None) -> None:
    assert public_group(uri) == expected


@pytest.mark.parametrize(
    ("permission", "access"),
    [
        ("READ", {"read"}),
        ("WRITE", {"write"}),
        ("READ_ACP", {"acl-read"}),
        ("WRITE_ACP", {"acl-write"}),
        ("FULL_CONTROL", {"read", "write", "acl-read", "acl-write"}),
    ],
)
def test_every_permission_to_all_users_is_public(permission: str, access: set[str]) -> None:
    verdict = analyse_acl_request(body(user(), group(ALL_USERS, permission)))
    assert verdict.public
    assert verdict.access == access
    assert verdict.forms == {"body"}
    assert verdict.principals == {"AllUsers"}


def test_single_grant_object_is_read() -> None:
    verdict = analyse_acl_request(body(group(AUTH_USERS, "READ")))
    assert verdict.public and verdict.principals == {"AuthenticatedUsers"}


@pytest.mark.parametrize(
    "params",
    [
        body(user()),
        body(user(), group(LOG_DELIVERY, "WRITE"), group(LOG_DELIVERY, "READ_ACP")),
        body(
            {
                "Grantee": {"xsi:type": "AmazonCustomerByEmail", "EmailAddress": "a@example.com"},
                "Permission": "READ",
            }
        ),
        {"AccessControlPolicy": {"AccessControlList": {"Grant": "garbage"}}},
        {"AccessControlPolicy": {"AccessControlList": ""}},
    ],
)
def test_private_bodies_are_not_public_but_are_recognised_as_body(params: dict) -> None:
    verdict = analyse_acl_request(params)
    assert not verdict.public
    assert verdict.present_forms == {"body"}


@pytest.mark.parametrize(
    ("canned", "group_name", "access"),
    [
        ("public-read", "AllUsers", {"read"}),
        ("public-read-write", "AllUsers", {"read", "write"}),
        ("authenticated-read", "AuthenticatedUsers", {"read"}),
        (["public-read"], "AllUsers", {"read"}),
        (" Public-Read ", "AllUsers", {"read"}),
    ],
)
def test_public_canned_acls(canned: object, group_name: str, access: set[str]) -> None:
    verdict = analyse_acl_request({"x-amz-acl": canned})
    assert verdict.principals == {group_name}
    assert verdict.access == access
    assert verdict.forms == {"header"}


@pytest.mark.parametrize(
    "canned",
    [
        "private",
        "bucket-owner-read",
        "bucket-owner-full-control",
        "log-delivery-write",
        "aws-exec-read",
        ["private"],
        "",
    ],
)
def test_private_canned_acls(canned: object) -> None:
    verdict = analyse_acl_request({"x-amz-acl": canned})
    assert not verdict.public
    assert verdict.present_forms == {"header"}


def test_canned_header_name_is_case_insensitive() -> None:
    assert analyse_acl_request({"X-Amz-Acl": "public-read"}).public


@pytest.mark.parametrize(
    ("headers", "access"),
    [
        ({"x-amz-grant-read": f"uri={ALL_USERS}"}, {"read"}),
        ({"x-amz-grant-read": f'uri="{AUTH_USERS}"'}, {"read"}),
        ({"x-amz-grant-write": f"uri='{ALL_USERS}'"}, {"write"}),
        ({"x-amz-grant-read-acp": f'emailAddress="a@example.com", uri="{ALL_USERS}"'}, {"acl-read"}),
        ({"x-amz-grant-write-acp": f"id={OWNER},uri={ALL_USERS}"}, {"acl-write"}),
        (
            {"x-amz-grant-full-control": f'id="{OWNER}", URI="{ALL_USERS}"'},
            {"read", "write", "acl-read", "acl-write"},
        ),
        ({"X-Amz-Grant-Read": [f"uri={ALL_USERS}"]}, {"read"}),
    ],
)
def test_public_grant_headers(headers: dict, access: set[str]) -> None:
    verdict = analyse_acl_request({"accessControlList": headers})
    assert verdict.public
    assert verdict.access == access
    assert verdict.forms == {"header"}


def test_grant_headers_directly_in_request_parameters_are_read_too() -> None:
    assert analyse_acl_request({"x-amz-grant-read": f"uri={ALL_USERS}"}).public


@pytest.mark.parametrize(
    "headers",
    [
        {"x-amz-grant-full-control": f'id="{OWNER}"'},
        {"x-amz-grant-write": f'uri="{LOG_DELIVERY}"', "x-amz-grant-read-acp": f"uri={LOG_DELIVERY}"},
        {"x-amz-grant-read": 'emailAddress="partner@example.com"'},
        {"x-amz-grant-read": "AllUsers"},  # a bare word names no grantee type
        {"x-amz-grant-read": None},
    ],
)
def test_private_grant_headers(headers: dict) -> None:
    assert not analyse_acl_request({"accessControlList": headers}).public


def test_no_acl_in_any_form() -> None:
    verdict = analyse_acl_request({"bucketName": "b", "Host": "b.s3.amazonaws.com", "acl": ""})
    assert not verdict.public
    assert verdict.present_forms == set()


def test_reasons_name_each_public_grant() -> None:
    verdict = analyse_acl_request(body(group(ALL_USERS, "READ"), group(AUTH_USERS, "WRITE_ACP")))
    assert len(verdict.reasons) == 2
    assert any("AllUsers" in r and "READ" in r for r in verdict.reasons)
    assert any("AuthenticatedUsers" in r and "WRITE_ACP" in r for r in verdict.reasons)
