"""Names S3 gives things that several readers share: each defined once, here.

A leaf module (it imports nothing from handlers), so that ``records`` (which renames
pipeline-rewritten keys to these spellings) can use them as well as ``acl``, the rules,
``exposure``, the alerts, Security Hub and the demo, without an import cycle.
"""

from __future__ import annotations

# The four Block Public Access flags, in AWS's order.
BPA_FLAGS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")

# The grant headers of an ACL request, and the permission each grants.
GRANT_HEADERS: dict[str, str] = {
    "x-amz-grant-read": "READ",
    "x-amz-grant-write": "WRITE",
    "x-amz-grant-read-acp": "READ_ACP",
    "x-amz-grant-write-acp": "WRITE_ACP",
    "x-amz-grant-full-control": "FULL_CONTROL",
}

# The canned ACL header.
CANNED_ACL_HEADER = "x-amz-acl"
