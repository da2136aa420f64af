"""Every cdktf and AWS-provider name the stacks use, imported in one place.

Two reasons for one module:
- Speed. ``cdktf_cdktf_provider_aws/__init__`` imports all ~2,100 resource modules
  (12-13 s, ~1.2 GB). Each resource module needs only the package's ``_jsii`` assembly,
  so we register the package without running its ``__init__`` and import just the
  modules below (~3 s). ``benchmarks/synth_speed.py`` measures both.
- Migration. HashiCorp archived cdktf on 2025-12-10; CDK Terrain (``cdktn``) is the
  drop-in successor. Moving means renaming the two packages here, nowhere else.
"""

from __future__ import annotations

import importlib.util
import sys

_PROVIDER_PACKAGE = "cdktf_cdktf_provider_aws"


def _register_provider_package_lazily() -> None:
    """Put the provider package in ``sys.modules`` without executing its ``__init__``."""
    if _PROVIDER_PACKAGE in sys.modules:
        return  # already imported (eagerly or lazily): nothing to gain
    spec = importlib.util.find_spec(_PROVIDER_PACKAGE)
    if spec is None:
        raise ImportError(f"{_PROVIDER_PACKAGE} is not installed; run `make bootstrap`")
    sys.modules[_PROVIDER_PACKAGE] = importlib.util.module_from_spec(spec)


_register_provider_package_lazily()

# ruff: noqa: E402, F401  (imports follow the lazy registration; this module only re-exports)
from cdktf import (
    App,
    AssetType,
    Fn,
    LocalBackend,
    S3Backend,
    TerraformAsset,
    TerraformOutput,
    TerraformResource,
    TerraformStack,
    Testing,
)
from cdktf_cdktf_provider_aws.cloudtrail import (
    Cloudtrail,
    CloudtrailAdvancedEventSelector,
    CloudtrailAdvancedEventSelectorFieldSelector,
)
from cdktf_cdktf_provider_aws.cloudwatch_event_rule import CloudwatchEventRule
from cdktf_cdktf_provider_aws.cloudwatch_event_target import (
    CloudwatchEventTarget,
    CloudwatchEventTargetDeadLetterConfig,
    CloudwatchEventTargetRetryPolicy,
)
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.cloudwatch_metric_alarm import CloudwatchMetricAlarm
from cdktf_cdktf_provider_aws.dynamodb_table import (
    DynamodbTable,
    DynamodbTableAttribute,
    DynamodbTablePointInTimeRecovery,
    DynamodbTableServerSideEncryption,
    DynamodbTableTtl,
)
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.kms_alias import KmsAlias
from cdktf_cdktf_provider_aws.kms_key import KmsKey
from cdktf_cdktf_provider_aws.lambda_event_source_mapping import (
    LambdaEventSourceMapping,
    LambdaEventSourceMappingScalingConfig,
)
from cdktf_cdktf_provider_aws.lambda_function import (
    LambdaFunction,
    LambdaFunctionDeadLetterConfig,
    LambdaFunctionEnvironment,
    LambdaFunctionLoggingConfig,
)
from cdktf_cdktf_provider_aws.lambda_function_event_invoke_config import LambdaFunctionEventInvokeConfig
from cdktf_cdktf_provider_aws.lambda_permission import LambdaPermission
from cdktf_cdktf_provider_aws.provider import AwsProvider, AwsProviderAssumeRole, AwsProviderDefaultTags
from cdktf_cdktf_provider_aws.s3_bucket import S3Bucket
from cdktf_cdktf_provider_aws.s3_bucket_lifecycle_configuration import (
    S3BucketLifecycleConfiguration,
    S3BucketLifecycleConfigurationRule,
    S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload,
    S3BucketLifecycleConfigurationRuleExpiration,
    S3BucketLifecycleConfigurationRuleFilter,
    S3BucketLifecycleConfigurationRuleNoncurrentVersionExpiration,
)
from cdktf_cdktf_provider_aws.s3_bucket_ownership_controls import (
    S3BucketOwnershipControls,
    S3BucketOwnershipControlsRule,
)
from cdktf_cdktf_provider_aws.s3_bucket_policy import S3BucketPolicy
from cdktf_cdktf_provider_aws.s3_bucket_public_access_block import S3BucketPublicAccessBlock
from cdktf_cdktf_provider_aws.s3_bucket_server_side_encryption_configuration import (
    S3BucketServerSideEncryptionConfigurationA,
    S3BucketServerSideEncryptionConfigurationRuleA,
    S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA,
)
from cdktf_cdktf_provider_aws.s3_bucket_versioning import (
    S3BucketVersioningA,
    S3BucketVersioningVersioningConfiguration,
)
from cdktf_cdktf_provider_aws.sns_topic import SnsTopic
from cdktf_cdktf_provider_aws.sns_topic_policy import SnsTopicPolicy
from cdktf_cdktf_provider_aws.sns_topic_subscription import SnsTopicSubscription
from cdktf_cdktf_provider_aws.sqs_queue import SqsQueue
from cdktf_cdktf_provider_aws.sqs_queue_policy import SqsQueuePolicy
from constructs import Construct

__all__ = [name for name in dir() if name[0].isupper()]
