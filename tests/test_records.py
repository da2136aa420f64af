"""Safe accessors for CloudTrail records of any event version or state of damage."""

from __future__ import annotations

import copy

import pytest

from handlers.detection.acl import GRANT_HEADERS
from handlers.detection.classify import classify
from handlers.detection.policy import RESTRICTING_KEYS
from handlers.detection.records import (
    account_id,
    actor,
    as_list,
    as_text,
    bucket_name,
    canonical_key,
    client_kind,
    deep_get,
    failed,
    get_ci,
    merge_values,
    normalize_record,
    object_key,
    request_parameters,
    session_context,
    user_agent_text,
)
from handlers.detection.rules.public_access_block import BPA_FLAGS


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


# --- Keys rewritten by log pipelines (issue 13 part 5) ---------------------------------------

S3 = "s3.amazonaws.com"
ALL_USERS_URI = "http://acs.amazonaws.com/groups/global/AllUsers"
LOG_DELIVERY_URI = "http://acs.amazonaws.com/groups/s3/LogDelivery"


def s3_record(name: str, params: object, **fields: object) -> dict:
    return {
        "eventVersion": "1.05",
        "eventID": "11111111-2222-3333-4444-555555555555",
        "eventSource": S3,
        "eventName": name,
        "requestParameters": params,
        **fields,
    }


def verdicts(record: dict) -> set[str]:
    return {finding["verdict"] for finding in classify(record)}


@pytest.mark.parametrize(
    ("key", "parent", "canonical"),
    [
        ("x_amz_grant_read", "accessControlList", "x-amz-grant-read"),
        ("X_AMZ_GRANT_FULL_CONTROL", "accessControlList", "x-amz-grant-full-control"),
        ("x_amz_acl", "requestParameters", "x-amz-acl"),
        ("xamzgrantwriteacp", "requestParameters", "x-amz-grant-write-acp"),  # separators dropped
        ("xsi_type", "Grantee", "xsi:type"),
        ("xmlns_xsi", "Grantee", "xmlns:xsi"),
        ("permission", "Grant", "Permission"),
        ("uri", "Grantee", "URI"),
        ("AccessControlList", "requestParameters", "accessControlList"),  # the header container
        ("accessControlList", "AccessControlPolicy", "AccessControlList"),  # the XML body
        ("AccessControlList", "AccessControlPolicy", "AccessControlList"),
        ("access_control_list", "access_control_policy", "AccessControlList"),
        ("eventId", "", "eventID"),
        ("eventname", "", "eventName"),
        ("request_parameters", "", "requestParameters"),
        ("aws_SourceIp", "IpAddress", "aws:SourceIp"),
        ("key", "Tag", "Key"),
        ("Key", "requestParameters", "key"),
        ("x-amz-grant-read", "accessControlList", "x-amz-grant-read"),  # already canonical
        ("somethingElse", "requestParameters", "somethingElse"),  # unknown: unchanged
        ("x_amz_meta_owner", "requestParameters", "x_amz_meta_owner"),
    ],
)
def test_canonical_key_reads_the_rewritten_family(key: str, parent: str, canonical: str) -> None:
    assert canonical_key(key, parent) == canonical


@pytest.mark.parametrize("key", [1, None, 2.5, ("t",), True])
def test_canonical_key_leaves_non_string_keys_alone(key: object) -> None:
    assert canonical_key(key) is key
    record = s3_record("PutObjectAcl", {key: "x", "AccessControlList": {key: 1, "x_amz_acl": "private"}})
    params = request_parameters(normalize_record(record))
    assert params[key] == "x"
    assert params["accessControlList"] == {key: 1, "x-amz-acl": "private"}


def test_the_vocabulary_covers_grant_headers_bpa_flags_and_restricting_condition_keys() -> None:
    for header in GRANT_HEADERS:
        assert canonical_key(header.replace("-", "_").upper(), "accessControlList") == header
    for flag in BPA_FLAGS:
        assert canonical_key(flag.lower(), "PublicAccessBlockConfiguration") == flag
        off = {"PublicAccessBlockConfiguration": {flag: True, flag.lower(): False}}
        assert merge_values(True, False, flag) is False, "a flag switched off wins"
        assert request_parameters({"requestParameters": off})["PublicAccessBlockConfiguration"] == {
            flag: False
        }
    for condition_key in RESTRICTING_KEYS:
        rewritten = condition_key.replace(":", "_").replace("-", "_")
        assert canonical_key(rewritten, "StringEquals").lower() == condition_key


def test_streamalert_sanitised_grant_header_is_public() -> None:
    record = s3_record(
        "PutObjectAcl",
        {"AccessControlList": {"x_amz_grant_read": f"uri={ALL_USERS_URI}"}, "acl": "", "key": "k"},
        eventId="...",
        userAgent=["..."],
    )
    assert request_parameters(record)["accessControlList"] == {"x-amz-grant-read": f"uri={ALL_USERS_URI}"}
    (finding,) = classify(record)
    assert (finding["verdict"], finding["principals"], finding["variant"]) == (
        "public",
        ["AllUsers"],
        "header",
    )
    assert finding["eventID"] == record["eventID"] and finding["userAgent"] == "..."


def test_sanitised_xml_body_keys_are_read() -> None:
    grant = {
        "Grantee": {"uri": ALL_USERS_URI, "xsi_type": "Group", "xmlns_xsi": "x"},
        "permission": "READ_ACP",
    }
    record = s3_record("PutBucketAcl", {"access_control_policy": {"access_control_list": {"grant": grant}}})
    (finding,) = classify(record)
    assert (finding["verdict"], finding["access"], finding["variant"]) == ("public", ["acl-read"], "body")
    grantee = request_parameters(record)["AccessControlPolicy"]["AccessControlList"]["Grant"]
    assert grantee["Grantee"] == {"URI": ALL_USERS_URI, "xsi:type": "Group", "xmlns:xsi": "x"}


def test_glue_lower_cased_record_is_read() -> None:
    record = {
        "eventversion": "1.08",
        "eventid": "e-1",
        "eventsource": S3,
        "eventname": "PutBucketAcl",
        "requestparameters": {"bucketname": "b", "x-amz-acl": ["public-read"]},
    }
    (finding,) = classify(record)
    assert (finding["verdict"], finding["bucket"], finding["eventID"]) == ("public", "b", "e-1")


# Both spellings in one object, with conflicting values: the more public one must win
# (or both be considered), in either order.
BOTH_SPELLINGS = [
    pytest.param(
        "PutObjectAcl",
        {
            "accessControlList": {"x-amz-grant-read": 'id="owner"'},
            "AccessControlList": {"x_amz_grant_read": f"uri={ALL_USERS_URI}"},
        },
        "public",
        id="grant-header-container",
    ),
    pytest.param(
        "PutObjectAcl",
        {
            "accessControlList": {
                "x-amz-grant-read": 'id="owner"',
                "x_amz_grant_read": f'uri="{ALL_USERS_URI}"',
            }
        },
        "public",
        id="grant-header",
    ),
    pytest.param(
        "PutBucketAcl", {"x-amz-acl": "private", "x_amz_acl": "public-read"}, "public", id="canned-acl"
    ),
    pytest.param(
        "PutBucketAcl",
        {"x-amz-acl": ["private"], "X-Amz-Acl": ["public-read-write"]},
        "public",
        id="canned-acl-lists",
    ),
    pytest.param(
        "PutBucketAcl",
        {
            "AccessControlPolicy": {
                "AccessControlList": {
                    "Grant": {
                        "Grantee": {"URI": LOG_DELIVERY_URI, "uri": ALL_USERS_URI},
                        "Permission": "READ",
                    }
                }
            }
        },
        "public",
        id="grantee-uri",
    ),
    pytest.param(
        "PutBucketAcl",
        {
            "AccessControlPolicy": {
                "AccessControlList": {"Grant": {"Grantee": {"URI": LOG_DELIVERY_URI}, "Permission": "READ"}}
            },
            "access_control_policy": {
                "access_control_list": {"grant": [{"grantee": {"uri": ALL_USERS_URI}, "permission": "READ"}]}
            },
        },
        "public",
        id="acl-body",
    ),
    pytest.param(
        "PutBucketPolicy",
        {
            "bucketPolicy": {
                "Statement": [
                    {"Effect": "Deny", "effect": "Allow", "Principal": "*", "Action": "s3:GetObject"}
                ]
            }
        },
        "public",
        id="policy-effect",
    ),
    pytest.param(
        "PutBucketPolicy",
        {
            "bucketPolicy": {
                "Statement": {
                    "Effect": "Allow",
                    "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
                    "principal": "*",
                    "Action": "s3:*",
                }
            }
        },
        "public",
        id="policy-principal",
    ),
    pytest.param(
        "PutBucketPolicy",
        {
            "bucketPolicy": {
                "Statement": {
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "s3:GetObject",
                    "Condition": {"StringEquals": {"aws:SourceVpc": "vpc-1"}},
                    "condition": {},
                }
            }
        },
        "public",
        id="policy-condition",
    ),
    pytest.param(
        "PutBucketPolicy",
        {
            "bucketPolicy": {
                "Statement": {
                    "Effect": "Allow",
                    "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
                    "Action": "s3:*",
                }
            },
            "bucket_policy": {"Statement": {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject"}},
        },
        "public",
        id="policy-document",
    ),
    pytest.param(
        "PutBucketPublicAccessBlock",
        {
            "PublicAccessBlockConfiguration": {
                **dict.fromkeys(
                    ["BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"],
                    True,
                ),
                "block_public_policy": False,
            }
        },
        "weakening",
        id="bpa-flag",
    ),
    pytest.param(
        "PutBucketPublicAccessBlock",
        {
            "PublicAccessBlockConfiguration": dict.fromkeys(
                ["BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"], True
            ),
            "public_access_block_configuration": {"BlockPublicAcls": "false"},
        },
        "weakening",
        id="bpa-configuration",
    ),
    pytest.param(
        "PutBucketOwnershipControls",
        {
            "OwnershipControls": {
                "Rule": {"ObjectOwnership": "BucketOwnerEnforced", "object_ownership": "ObjectWriter"}
            }
        },
        "weakening",
        id="object-ownership",
    ),
]


@pytest.mark.parametrize("reverse", [False, True], ids=["canonical-first", "rewritten-first"])
@pytest.mark.parametrize(("name", "params", "verdict"), BOTH_SPELLINGS)
def test_a_rewritten_duplicate_can_neither_hide_nor_override(
    name: str, params: dict, verdict: str, reverse: bool
) -> None:
    def reordered(value: object) -> object:
        if isinstance(value, dict):
            items = [(k, reordered(v)) for k, v in value.items()]
            return dict(reversed(items) if reverse else items)
        return value

    assert verdict in verdicts(s3_record(name, reordered(params), bucketName="b"))


@pytest.mark.parametrize("reverse", [False, True])
def test_a_rewritten_trail_flag_cannot_hide_narrowing(reverse: bool) -> None:
    params = {"name": "t", "isMultiRegionTrail": True, "is_multi_region_trail": False}
    params = dict(reversed(params.items())) if reverse else params
    record = {
        "eventSource": "cloudtrail.amazonaws.com",
        "eventName": "UpdateTrail",
        "requestParameters": params,
    }
    assert verdicts(record) == {"tamper"}


def test_at_the_top_level_cloudtrails_own_spelling_wins() -> None:
    record = {"eventID": "real", "eventId": "...", "eventName": "PutBucketAcl", "event_name": "GetObject"}
    assert normalize_record(record)["eventID"] == "real"
    assert normalize_record(dict(reversed(record.items())))["eventID"] == "real"
    assert normalize_record(dict(reversed(record.items())))["eventName"] == "PutBucketAcl"
    assert normalize_record({"eventId": "only"})["eventID"] == "only"
    assert normalize_record({"eventID": None, "eventId": "filled"})["eventID"] == "filled"


@pytest.mark.parametrize("blank", [None, "", [""], "junk", 7, ["a", "b"]])
def test_a_scalar_request_parameters_cannot_displace_the_object(blank: object) -> None:
    params = {"bucketName": "b", "x_amz_acl": "public-read"}
    for record in (
        s3_record("PutBucketAcl", blank, request_parameters=params),
        {"request_parameters": params, **s3_record("PutBucketAcl", blank)},
    ):
        assert verdicts(record) == {"public"}


@pytest.mark.parametrize("reverse", [False, True])
def test_real_sub_resource_markers_give_way_to_the_body(reverse: bool) -> None:
    """Real records carry ``"tagging": ""`` beside ``"Tagging": {...}``: not a conflict."""
    items = [("tagging", ""), ("Tagging", {"TagSet": {"Tag": {"Key": "k", "Value": "v"}}})]
    params = dict(reversed(items) if reverse else items)
    assert request_parameters(s3_record("PutBucketTagging", params)) == {
        "Tagging": {"TagSet": {"Tag": {"Key": "k", "Value": "v"}}}
    }
    items = [
        ("ownershipControls", [""]),
        ("OwnershipControls", {"Rule": {"ObjectOwnership": "ObjectWriter"}}),
    ]
    params = dict(reversed(items) if reverse else items)
    assert verdicts(s3_record("PutBucketOwnershipControls", params, bucketName="b")) == {"weakening"}


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        (["..."], "..."),
        (["[aws-cli/2.15.0", "Python/3.11.6]"], "[aws-cli/2.15.0 Python/3.11.6]"),
        ([["aws-cli/2.15.0"], [["Python/3.11"]]], "aws-cli/2.15.0 Python/3.11"),
        ([], None),
        ([None, 3, {"k": "v"}], None),
        ([[[[[]]]]], None),
    ],
)
def test_user_agent_lists_become_one_string(agent: object, expected: str | None) -> None:
    assert normalize_record({"userAgent": agent})["userAgent"] == expected
    assert user_agent_text(agent) == expected


def test_huge_and_deep_user_agent_lists_are_bounded() -> None:
    huge = ["aws-cli/2.0"] * 200_000
    text = normalize_record({"userAgent": huge})["userAgent"]
    assert text is not None and len(text) <= 2048
    deep: list = ["inner"]
    for _ in range(50_000):
        deep = [deep]
    assert user_agent_text(deep) is None  # the bounded walk gives up before reaching it
    wide = [[[["x"] * 100] * 100] * 100]
    assert user_agent_text(wide) is not None


def test_user_agent_that_is_not_a_list_is_left_to_the_readers() -> None:
    assert normalize_record({"userAgent": "[S3Console/0.4]"})["userAgent"] == "[S3Console/0.4]"
    assert normalize_record({"userAgent": {"k": 1}})["userAgent"] == {"k": 1}


def test_huge_lists_in_parameters_are_normalised_and_still_read() -> None:
    values = ['id="a"'] * 100_000 + [f"uri={ALL_USERS_URI}"]
    record = s3_record("PutObjectAcl", {"AccessControlList": {"x_amz_grant_read": values}})
    assert verdicts(record) == {"public"}


def test_deeply_nested_parameters_do_not_crash() -> None:
    nested: dict = {"x_amz_acl": "public-read"}
    for _ in range(5_000):
        nested = {"AccessControlList": nested}
    record = s3_record("PutBucketAcl", {"AccessControlList": nested, "accessControlList": nested})
    normalize_record(record)  # no RecursionError escapes
    assert isinstance(classify(record), list)


def test_normalising_never_mutates_and_is_idempotent() -> None:
    record = s3_record(
        "PutObjectAcl",
        {
            "AccessControlList": {"x_amz_grant_read": f"uri={ALL_USERS_URI}"},
            "x-amz-acl": "private",
            "x_amz_acl": "public-read",
        },
        eventId="...",
        userAgent=[["a"], "b"],
    )
    before = copy.deepcopy(record)
    once = normalize_record(record)
    assert record == before
    assert normalize_record(once) == once


def test_a_record_with_nothing_to_rename_is_returned_as_is() -> None:
    record = s3_record(
        "PutBucketAcl", {"bucketName": "b", "Host": "b.s3.amazonaws.com", "x-amz-acl": "private"}
    )
    assert normalize_record(record) is record
    assert normalize_record("not a record") == "not a record"  # type: ignore[arg-type]


@pytest.mark.parametrize("version", ["1.03", "1.04", "1.05", "1.11", ["1.05"], None, "..."])
def test_every_event_version_is_read(version: object) -> None:
    # 1.03-era shape (AWS docs): list host, acl [""], userAgent "[]", Grant as one object.
    params = {
        "bucketName": "b",
        "host": ["s3.us-west-2.amazonaws.com"],
        "acl": [""],
        "AccessControlPolicy": {
            "AccessControlList": {
                "Grant": {"Grantee": {"URI": ALL_USERS_URI, "xsi:type": "Group"}, "Permission": "READ"}
            }
        },
    }
    record = s3_record("PutBucketAcl", params, eventVersion=version, userAgent="[]")
    assert verdicts(record) == {"public"}


def test_a_rule_called_on_a_raw_record_reads_rewritten_keys_too() -> None:
    """Nested keys are renamed where they are read (request_parameters), not only by classify."""
    from handlers.detection.rules import acl_grants

    record = s3_record(
        "PutObjectAcl", {"AccessControlList": {"x_amz_grant_write_acp": f"uri={ALL_USERS_URI}"}}
    )
    (finding,) = acl_grants.classify(record)
    assert (finding["verdict"], finding["access"]) == ("public", ["acl-write"])


def test_rewritten_identity_keys_are_read() -> None:
    record = normalize_record(
        {
            "useridentity": {
                "ARN": "arn:aws:iam::111122223333:user/a",
                "account_id": "111122223333",
                "session_context": {"Attributes": {"mfa_authenticated": "true"}},
            }
        }
    )
    assert actor(record) == "arn:aws:iam::111122223333:user/a"
    assert account_id(record) == "111122223333"
    assert session_context(record)["mfaAuthenticated"] is True


@pytest.mark.parametrize("reverse", [False, True])
def test_resource_names_keep_cloudtrails_own_spelling(reverse: bool) -> None:
    """A list of two names would name neither: the detector's own trail must stay recognised."""
    from handlers.detection.rules.detector_context import DetectorContext

    items = [
        ("name", "detector-trail"),
        ("Name", "other"),
        ("s3BucketName", "elsewhere"),
        ("s3_bucket_name", None),
    ]
    params = dict(reversed(items) if reverse else items)
    record = {
        "eventSource": "cloudtrail.amazonaws.com",
        "eventName": "UpdateTrail",
        "requestParameters": params,
    }
    assert request_parameters(record)["name"] == "detector-trail"
    context = DetectorContext(trail_name="detector-trail", trail_bucket="logs")
    (finding,) = classify(record, context)
    assert finding["verdict"] == "tamper" and any("elsewhere" in reason for reason in finding["reasons"])


@pytest.mark.parametrize("reverse", [False, True])
def test_a_blank_scalar_does_not_hide_a_canned_acl(reverse: bool) -> None:
    items = [("x-amz-acl", ""), ("x_amz_acl", "public-read")]
    assert verdicts(
        s3_record("PutBucketAcl", dict(reversed(items) if reverse else items), bucketName="b")
    ) == {"public"}
