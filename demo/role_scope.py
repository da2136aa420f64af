"""Credentials scoped like the function's role, as far as moto's IAM enforcement can express it.

moto enforces IAM per request once enforcement is on, with three limits (moto 5.2):
- only S3 bucket calls (and SQS, IAM, STS) are checked against a resource ARN; every
  other service is checked against ``"*"``, so a statement scoped to the topic's or the
  table's ARN never matches;
- it supplies no request context, so a statement with a ``StringEquals`` condition
  (``aws:ResourceAccount``) is an explicit deny;
- its S3 handler checks some calls under other action names than IAM's
  (``GetPublicAccessBlock`` is checked as ``s3:ListBucket``, ``PutPublicAccessBlock`` as
  ``s3:CreateBucket``, the account-level calls as ``s3:GetPublicAccessBlock`` and
  ``s3:PutPublicAccessBlock``).

So the harness reads the role's policies back and derives the closest document moto can
evaluate: actions are kept exactly (a missing action is refused), S3 bucket resources
are kept, other resources become ``"*"``, conditions on Allow statements are dropped
(the handler passes ``ExpectedBucketOwner`` on every S3 call, which is the same guard),
Deny statements moto cannot evaluate are dropped, and each renamed S3 action is granted
under moto's name too. That document goes on a twin role, assumed through moto's STS.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from demo.emulator import MotoServer

# IAM action -> the name moto's S3 handler checks for the same call.
MOTO_S3_ACTION_NAMES: dict[str, tuple[str, ...]] = {
    "s3:GetBucketPublicAccessBlock": ("s3:ListBucket",),
    "s3:GetBucketOwnershipControls": ("s3:ListBucket",),
    "s3:PutBucketPublicAccessBlock": ("s3:CreateBucket",),
    "s3:GetAccountPublicAccessBlock": ("s3:GetPublicAccessBlock",),
    "s3:PutAccountPublicAccessBlock": ("s3:PutPublicAccessBlock",),
}
# Services whose calls moto checks against a resource ARN (all others against "*").
RESOURCE_CHECKED = ("arn:aws:s3:::", "arn:aws:sqs:", "arn:aws:iam:", "arn:aws:sts:")
TWIN_SUFFIX = "-emulated"


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def moto_evaluable(document: dict[str, Any]) -> dict[str, Any]:
    """The closest policy document moto's IAM enforcement evaluates as AWS would (see module doc)."""
    statements = []
    for statement in _as_list(document.get("Statement")):
        statement = dict(statement)
        effect = statement.get("Effect")
        if statement.get("Condition"):
            if effect == "Deny":
                continue  # moto would deny unconditionally: broader than the real statement
            statement.pop("Condition")
        if "Action" in statement:
            actions = [str(a) for a in _as_list(statement["Action"])]
            for action in list(actions):
                actions += [a for a in MOTO_S3_ACTION_NAMES.get(action, ()) if a not in actions]
            statement["Action"] = actions
        resources = [str(r) for r in _as_list(statement.get("Resource"))]
        if resources and not all(r == "*" or r.startswith(RESOURCE_CHECKED) for r in resources):
            statement["Resource"] = "*"
        statements.append(statement)
    return {"Version": document.get("Version", "2012-10-17"), "Statement": statements}


def role_policy_documents(server: MotoServer, role_arn: str) -> list[dict[str, Any]]:
    """The inline and attached policy documents of the role (the IAM API returns them decoded)."""
    iam = server.client("iam", "us-east-1")
    name = role_arn.rsplit("/", 1)[-1]
    documents = []
    for policy_name in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        documents.append(
            _document(iam.get_role_policy(RoleName=name, PolicyName=policy_name)["PolicyDocument"])
        )
    for attached in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
        policy = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]
        version = iam.get_policy_version(
            PolicyArn=attached["PolicyArn"], VersionId=policy["DefaultVersionId"]
        )
        documents.append(_document(version["PolicyVersion"]["Document"]))
    return documents


def _document(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else dict(value)


def merged(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """One document holding every statement of ``documents``."""
    return {
        "Version": "2012-10-17",
        "Statement": [s for d in documents for s in _as_list(d.get("Statement"))],
    }


def twin_role_credentials(
    server: MotoServer, role_arn: str, document: dict[str, Any] | None = None, session_name: str = "demo"
) -> dict[str, str]:
    """Temporary credentials of a twin of ``role_arn`` carrying ``document`` (default: the role's own).

    Call with IAM enforcement off. The twin has the role's trust policy; moto's STS does not
    check it, so the harness can assume a role only Lambda may assume in AWS.
    """
    iam = server.client("iam", "us-east-1")
    name = role_arn.rsplit("/", 1)[-1]
    source = document if document is not None else merged(role_policy_documents(server, role_arn))
    evaluable = json.dumps(moto_evaluable(source), sort_keys=True)
    # One twin per document: moto looks the policies up by role name at every request, so
    # credentials of a twin must never see another document put on the same name.
    twin = f"{name}{TWIN_SUFFIX}-{hashlib.sha256(evaluable.encode()).hexdigest()[:8]}"[-64:]
    try:
        arn = iam.get_role(RoleName=twin)["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        trust = _document(iam.get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"])
        arn = iam.create_role(RoleName=twin, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        iam.put_role_policy(RoleName=twin, PolicyName="deployed", PolicyDocument=evaluable)
    sts = server.client("sts", "us-east-1")
    return sts.assume_role(RoleArn=arn, RoleSessionName=session_name)["Credentials"]


def without_action(document: dict[str, Any], action: str) -> dict[str, Any]:
    """A copy of ``document`` with ``action`` removed from every statement (negative controls)."""
    statements = []
    for statement in _as_list(document.get("Statement")):
        kept = [a for a in _as_list(statement.get("Action")) if a != action]
        if kept:
            statements.append({**statement, "Action": kept})
    return {**document, "Statement": statements}
