"""The CloudTrail trail EventBridge depends on, and the bucket that keeps its log files.

EventBridge only receives "AWS API Call via CloudTrail" events while a trail is logging.
When ``trail.create = false`` the stack relies on an existing (e.g. organisation) trail
and creates nothing here.

What the trail records comes from the rule registry (:mod:`handlers.detection.rules`): management events
always (every rule's management calls), and the data events each rule declares, for the trail
options the account turns on (they cost money).
"""

from __future__ import annotations

import json
from typing import Any

from handlers.detection.rules import RULE_MODULES, data_events_of
from stacks.bindings import (
    Cloudtrail,
    CloudtrailAdvancedEventSelector,
    CloudtrailAdvancedEventSelectorFieldSelector,
    Construct,
    S3Bucket,
    S3BucketLifecycleConfiguration,
    S3BucketLifecycleConfigurationRule,
    S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload,
    S3BucketLifecycleConfigurationRuleExpiration,
    S3BucketLifecycleConfigurationRuleFilter,
    S3BucketLifecycleConfigurationRuleNoncurrentVersionExpiration,
    S3BucketOwnershipControls,
    S3BucketOwnershipControlsRule,
    S3BucketPolicy,
    S3BucketPublicAccessBlock,
    S3BucketServerSideEncryptionConfigurationA,
    S3BucketServerSideEncryptionConfigurationRuleA,
    S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA,
    S3BucketVersioningA,
    S3BucketVersioningVersioningConfiguration,
)
from stacks.config import AccountConfig
from stacks.scan_exceptions import accept_findings


def trail_name(account: AccountConfig) -> str:
    return f"{account.name}-trail"


def trail_arn(account: AccountConfig) -> str:
    """The trail's ARN, known before it exists (the bucket and key policies need it first)."""
    region, acct = account.home_region, account.account_id
    return f"arn:{account.partition}:cloudtrail:{region}:{acct}:trail/{trail_name(account)}"


def log_bucket_name(account: AccountConfig) -> str:
    return f"{account.name}-trail-logs-{account.account_id}"


def log_bucket_policy(account: AccountConfig) -> dict[str, Any]:
    """TLS only; CloudTrail may check the ACL and write under AWSLogs/, for this trail only."""
    p = account.partition
    bucket = f"arn:{p}:s3:::{log_bucket_name(account)}"
    from_this_trail = {"StringEquals": {"aws:SourceArn": trail_arn(account)}}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket, f"{bucket}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
            {
                "Sid": "CloudTrailAclCheck",
                "Effect": "Allow",
                "Principal": {"Service": "cloudtrail.amazonaws.com"},
                "Action": "s3:GetBucketAcl",
                "Resource": bucket,
                "Condition": from_this_trail,
            },
            {
                "Sid": "CloudTrailWrite",
                "Effect": "Allow",
                "Principal": {"Service": "cloudtrail.amazonaws.com"},
                "Action": "s3:PutObject",
                "Resource": f"{bucket}/AWSLogs/{account.account_id}/*",
                "Condition": {
                    "StringEquals": {
                        "aws:SourceArn": trail_arn(account),
                        "s3:x-amz-acl": "bucket-owner-full-control",
                    }
                },
            },
        ],
    }


def data_event_names(account: AccountConfig) -> dict[str, tuple[str, ...]]:
    """Per data resource type, the write calls the trail records: those the rules declare
    (``DATA_EVENTS``) under a trail option the account turns on (reads are never logged)."""
    names: dict[str, list[str]] = {}
    for module in RULE_MODULES:
        for events in data_events_of(module):
            if getattr(account, events.option):
                chosen = names.setdefault(events.resource_type, [])
                chosen.extend(name for name in events.event_names if name not in chosen)
    return {resource_type: tuple(chosen) for resource_type, chosen in names.items()}


def selector_name(resource_type: str) -> str:
    """``AWS::S3::Object`` -> ``s3-object-data-events``."""
    return "-".join(resource_type.lower().split("::")[1:]) + "-data-events"


class Trail(Construct):
    """A multi-region trail with log file validation, and its locked-down log bucket."""

    def __init__(self, scope: Construct, id: str, *, account: AccountConfig, kms_key_arn: str | None) -> None:
        super().__init__(scope, id)
        self.bucket = S3Bucket(self, "log-bucket", bucket=log_bucket_name(account), force_destroy=False)
        accept_findings(self.bucket, "CKV_AWS_18", "CKV_AWS_144", "CKV2_AWS_62")
        bucket_id = self.bucket.id
        S3BucketPublicAccessBlock(
            self,
            "log-bucket-public-access-block",
            bucket=bucket_id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
        )
        S3BucketOwnershipControls(
            self,
            "log-bucket-ownership",
            bucket=bucket_id,
            rule=S3BucketOwnershipControlsRule(object_ownership="BucketOwnerEnforced"),
        )
        S3BucketVersioningA(
            self,
            "log-bucket-versioning",
            bucket=bucket_id,
            versioning_configuration=S3BucketVersioningVersioningConfiguration(status="Enabled"),
        )
        by_default = (
            S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA(
                sse_algorithm="aws:kms", kms_master_key_id=kms_key_arn
            )
            if kms_key_arn
            else S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA(
                sse_algorithm="AES256"
            )
        )
        S3BucketServerSideEncryptionConfigurationA(
            self,
            "log-bucket-encryption",
            bucket=bucket_id,
            rule=[
                S3BucketServerSideEncryptionConfigurationRuleA(
                    apply_server_side_encryption_by_default=by_default, bucket_key_enabled=bool(kms_key_arn)
                )
            ],
        )
        S3BucketLifecycleConfiguration(
            self,
            "log-bucket-lifecycle",
            bucket=bucket_id,
            rule=[
                S3BucketLifecycleConfigurationRule(
                    id="expire-trail-logs",
                    status="Enabled",
                    filter=[S3BucketLifecycleConfigurationRuleFilter(prefix="")],
                    expiration=[
                        S3BucketLifecycleConfigurationRuleExpiration(days=account.trail_log_retention_days)
                    ],
                    noncurrent_version_expiration=[
                        S3BucketLifecycleConfigurationRuleNoncurrentVersionExpiration(noncurrent_days=30)
                    ],
                    abort_incomplete_multipart_upload=[
                        S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload(
                            days_after_initiation=7
                        )
                    ],
                )
            ],
        )
        policy = S3BucketPolicy(
            self, "log-bucket-policy", bucket=bucket_id, policy=json.dumps(log_bucket_policy(account))
        )
        self.trail = Cloudtrail(
            self,
            "trail",
            name=trail_name(account),
            s3_bucket_name=bucket_id,
            is_multi_region_trail=True,
            include_global_service_events=True,
            enable_log_file_validation=True,
            enable_logging=True,
            kms_key_id=kms_key_arn,
            advanced_event_selector=_event_selectors(account) or None,
            depends_on=[policy],
        )
        accept_findings(self.trail, "CKV_AWS_252", "CKV2_AWS_10")


def _event_selectors(account: AccountConfig) -> list[CloudtrailAdvancedEventSelector]:
    """Management events always; object data events only for the chosen calls (they cost money)."""
    chosen = data_event_names(account)
    if not chosen:
        return []  # no selectors: the trail's default, all management events
    field = CloudtrailAdvancedEventSelectorFieldSelector
    return [
        CloudtrailAdvancedEventSelector(
            name="management-events", field_selector=[field(field="eventCategory", equal_to=["Management"])]
        ),
        *(
            CloudtrailAdvancedEventSelector(
                name=selector_name(resource_type),
                field_selector=[
                    field(field="eventCategory", equal_to=["Data"]),
                    field(field="resources.type", equal_to=[resource_type]),
                    field(field="readOnly", equal_to=["false"]),
                    field(field="eventName", equal_to=list(names)),
                ],
            )
            for resource_type, names in chosen.items()
        ),
    ]
