"""Security-scan findings we accept on purpose, recorded next to the resource they concern.

Checkov cannot read inline skip comments in Terraform JSON (its ``terraform_json``
runner ignores them), so each accepted check is written into the resource's ``//``
comment block as ``checkov_skips``. ``tests/test_checkov.py`` runs checkov, fails on any
finding a resource does not justify this way, and fails on a justification no longer needed.
"""

from __future__ import annotations

from stacks.bindings import TerraformResource

# One place for the reasons, so the same decision reads the same everywhere.
REASONS: dict[str, str] = {
    "CKV_AWS_117": "the function calls only AWS APIs over TLS; a VPC adds NAT or endpoints, no control",
    "CKV_AWS_272": "the package is built and deployed by the reviewed plan pipeline; no Signer profile",
    "CKV_AWS_50": "X-Ray needs xray:PutTraceSegments on Resource '*', which the no-'*' IAM rule forbids; "
    "decision logs and the error alarm cover tracing needs",
    "CKV_AWS_252": "EventBridge consumes the trail's events directly; per-log-file SNS notices are noise",
    "CKV2_AWS_10": "EventBridge receives the trail's events without CloudWatch Logs; ingesting twice costs",
    "CKV_AWS_18": "only CloudTrail writes this bucket; access logging needs a second bucket (and its logs)",
    "CKV_AWS_144": "log file validation and versioning protect integrity; replication doubles storage",
    "CKV2_AWS_62": "nothing consumes object notifications for trail log files",
}


def accept_findings(resource: TerraformResource, *check_ids: str) -> None:
    """Record that ``resource`` deliberately fails ``check_ids`` (see :data:`REASONS`)."""
    resource.add_override("//.checkov_skips", [f"{check_id}: {REASONS[check_id]}" for check_id in check_ids])
