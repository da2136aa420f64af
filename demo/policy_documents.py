"""Resource policy documents the demo and the benchmarks put on emulated resources."""

from __future__ import annotations

from typing import Any


def policy_document(statement: dict[str, Any]) -> dict[str, Any]:
    """A one-statement policy document in the current policy language version."""
    return {"Version": "2012-10-17", "Statement": [statement]}


def public_read_policy(bucket: str) -> dict[str, Any]:
    """A bucket policy letting anyone read every object of ``bucket``: the classic public exposure."""
    return policy_document(
        {
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/*",
        }
    )
