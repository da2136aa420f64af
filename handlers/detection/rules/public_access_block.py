"""Block Public Access switched off or removed, for a bucket or the whole account.

Turning BPA off changes no policy or ACL, so it re-exposes whatever public policy or
ACL is already there: a weakening, not by itself a public finding. An all-true put
(our own remediation emits one) is not a finding at all.
"""

from __future__ import annotations

from typing import Any

from handlers.detection.finding import Finding
from handlers.detection.records import Record, as_text, deep_get, get_ci, request_parameters
from handlers.detection.rules.base import make_finding
from handlers.detection.rules.declarations import Confirmation, PatternPart, ReplayHint
from handlers.detection.rules.detector_context import NO_CONTEXT, DetectorContext
from handlers.detection.s3_terms import BPA_FLAGS as BPA_FLAGS

EVENT_SOURCE = "s3.amazonaws.com"
EVENT_NAMES = (
    "PutBucketPublicAccessBlock",
    "DeleteBucketPublicAccessBlock",
    "PutAccountPublicAccessBlock",
    "DeleteAccountPublicAccessBlock",
)
_PUTS = ["PutBucketPublicAccessBlock", "PutAccountPublicAccessBlock"]
PATTERNS = (
    PatternPart(
        "guard-removal", {"eventName": ["DeleteBucketPublicAccessBlock", "DeleteAccountPublicAccessBlock"]}
    ),
    # A flag that is false, "false" (old shapes) or omitted (omitted means off). An all-true put
    # (our own remediation emits one) is not routed.
    *(
        PatternPart(
            "guard-removal",
            {
                "eventName": _PUTS,
                "requestParameters": {
                    "PublicAccessBlockConfiguration": {flag: [False, "false", {"exists": False}]}
                },
            },
        )
        for flag in BPA_FLAGS
    ),
)
CONFIRMATION: tuple[Confirmation, ...] = ("bucket", "account")
REPLAY: dict[str, ReplayHint] = {
    "PutBucketPublicAccessBlock": "put-bucket-public-access-block",
    "DeleteBucketPublicAccessBlock": "delete-bucket-public-access-block",
    "PutAccountPublicAccessBlock": "put-account-public-access-block",
    "DeleteAccountPublicAccessBlock": "delete-account-public-access-block",
}


def flag_is_on(value: Any) -> bool:
    """A BPA flag as recorded: JSON boolean, or "true"/["true"] in older shapes. Omitted is off."""
    text = as_text(value)
    if isinstance(value, bool):
        return value
    return text is not None and text.strip().lower() == "true"


def flags_off(config: Any) -> list[str]:
    """The BPA flags a configuration leaves off (omitted flags are off)."""
    return [flag for flag in BPA_FLAGS if not flag_is_on(get_ci(config, flag))]


def classify(record: Record, context: DetectorContext = NO_CONTEXT) -> list[Finding]:
    """A weakening finding for any flag left off, or for a deletion."""
    event_name = as_text(record.get("eventName")) or ""
    account_level = "Account" in event_name
    scope = "account" if account_level else "bucket"
    where = "the account" if account_level else "the bucket"
    if event_name.startswith("Delete"):
        off = list(BPA_FLAGS)
        reasons = [f"Block Public Access configuration deleted for {where}: all four flags are now off"]
    else:
        params = request_parameters(record)
        config = get_ci(params, "PublicAccessBlockConfiguration")
        if config is None:
            config = deep_get(params, "PutPublicAccessBlockRequest", "PublicAccessBlockConfiguration")
        if not isinstance(config, dict):
            # No configuration in the record (null or damaged parameters): the new flags are unknown.
            return [
                make_finding(
                    record,
                    verdict="undetermined",
                    kind="block-public-access",
                    route="guard-removal",
                    variant="body",
                    scope=scope,
                    reasons=[
                        f"the {event_name} record carries no configuration; cannot tell which flags are off"
                    ],
                    bucket=None if account_level else ...,
                )
            ]
        off = flags_off(config)
        if not off:
            return []
        reasons = [f"Block Public Access for {where} leaves {', '.join(off)} off"]
    return [
        make_finding(
            record,
            verdict="weakening",
            kind="block-public-access",
            route="guard-removal",
            variant="body",
            scope=scope,
            reasons=reasons,
            bucket=None if account_level else ...,
        )
    ]
