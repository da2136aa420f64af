"""The AWS providers of one stack: the home region's, and one alias per other watched region.

Two optional environment overrides, never set for real deployments:
- ``DETECTOR_AWS_ENDPOINT`` (e.g. ``http://127.0.0.1:4566``): point every service the stack
  uses at a local emulator, with credential and account-id checks skipped and path-style S3.
- ``DETECTOR_PLAN_DEMO=1``: let ``terraform plan`` run with dummy credentials and no AWS
  account (``make plan`` demo); the plan is real, only the provider's checks are skipped.
Both are read in ``main.py`` and passed in explicitly, so the stack code stays pure.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from stacks.bindings import AwsProvider, AwsProviderAssumeRole, AwsProviderDefaultTags, Construct
from stacks.config import AccountConfig

ENDPOINT_ENV = "DETECTOR_AWS_ENDPOINT"
PLAN_DEMO_ENV = "DETECTOR_PLAN_DEMO"
# Provider endpoint keys for every service the stack creates or reads.
ENDPOINT_SERVICES = (
    "cloudtrail",
    "cloudwatch",
    "dynamodb",
    "events",
    "iam",
    "kms",
    "lambda",
    "logs",
    "s3",
    "sns",
    "sqs",
    "sts",
)
TAGS = {"application": "s3-public-exposure-detector", "managed-by": "cdktf"}


@dataclass(frozen=True)
class ProviderOptions:
    """How the providers reach AWS; the defaults are a real deployment."""

    endpoint_url: str | None = None  # a local emulator for every service
    plan_demo: bool = False  # plan without an AWS account

    @classmethod
    def from_environment(cls) -> ProviderOptions:
        """Read ``DETECTOR_AWS_ENDPOINT`` and ``DETECTOR_PLAN_DEMO``."""
        return cls(
            endpoint_url=os.environ.get(ENDPOINT_ENV) or None,
            plan_demo=os.environ.get(PLAN_DEMO_ENV, "") not in ("", "0", "false"),
        )


def build_providers(
    scope: Construct, account: AccountConfig, options: ProviderOptions
) -> dict[str, AwsProvider]:
    """One provider per watched region, keyed by region; the home region's is the default."""
    providers: dict[str, AwsProvider] = {}
    for region in account.regions:
        home = region == account.home_region
        providers[region] = AwsProvider(
            scope,
            "aws" if home else f"aws-{region}",
            alias=None if home else region,
            region=region,
            # Without credentials the account cannot be checked; real deployments always pin it.
            allowed_account_ids=None if (options.endpoint_url or options.plan_demo) else [account.account_id],
            assume_role=[
                AwsProviderAssumeRole(role_arn=account.deploy_role_arn, session_name="s3-detector-deploy")
            ]
            if account.deploy_role_arn and not (options.endpoint_url or options.plan_demo)
            else None,
            default_tags=[AwsProviderDefaultTags(tags={**TAGS, "detector-stack": account.name})],
            **_offline_settings(options),
        )
    return providers


def _offline_settings(options: ProviderOptions) -> dict[str, Any]:
    if options.endpoint_url:
        url = options.endpoint_url
        return {
            "endpoints": [{service: url for service in ENDPOINT_SERVICES}],
            "access_key": "test",
            "secret_key": "test",
            "skip_credentials_validation": True,
            "skip_requesting_account_id": True,
            "skip_metadata_api_check": "true",
            "s3_use_path_style": True,
        }
    if options.plan_demo:
        return {
            "access_key": "plan-demo",
            "secret_key": "plan-demo",
            "skip_credentials_validation": True,
            "skip_requesting_account_id": True,
            "skip_metadata_api_check": "true",
        }
    return {}
