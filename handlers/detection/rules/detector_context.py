"""What the detector knows about its own setup, which a CloudTrail record does not say.

"Is this bucket the one our trail writes to?", "is this key the one encrypting our trail?"
and "is this tag the one that approves public access?" cannot be answered from a record
alone, so the caller passes a :class:`DetectorContext` into classification. It is plain
data: the response Lambda builds it from its environment (:func:`from_environment`),
``detect`` from its command line, the dataset from each case's ``context`` object. The
trail fields are optional; an empty context makes the rules that need them stay silent,
never guess. The approval tag always has a value: the deployment default unless configured.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The tag whose value (an ISO date) approves a bucket's public access until then; the same default
# as ``exceptions.approval_tag`` in the stack's configuration and ``APPROVAL_TAG`` in the function.
DEFAULT_APPROVAL_TAG = "public-access-approved-until"

# Environment variable -> field, as the stack sets them on the response function.
ENVIRONMENT: dict[str, str] = {
    "TRAIL_NAME": "trail_name",
    "TRAIL_BUCKET": "trail_bucket",
    "TRAIL_KMS_KEY_ARN": "trail_key_arn",
    "DETECTOR_KMS_KEY_ARN": "detector_key_arn",
    "APPROVAL_TAG": "approval_tag",
}
# Dataset ``context`` key -> field (camelCase, like the record around it).
DATASET_KEYS: dict[str, str] = {
    "trailName": "trail_name",
    "trailBucket": "trail_bucket",
    "trailKeyArn": "trail_key_arn",
    "detectorKeyArn": "detector_key_arn",
    "approvalTag": "approval_tag",
}
# Fields that are never unset: an empty or missing value means this default.
DEFAULTS: dict[str, str] = {"approval_tag": DEFAULT_APPROVAL_TAG}


@dataclass(frozen=True)
class DetectorContext:
    """The detector's own trail, its log bucket and KMS keys (all optional), and its approval tag."""

    trail_name: str | None = None  # a name or a trail ARN
    trail_bucket: str | None = None
    trail_key_arn: str | None = None  # the key encrypting the trail's log files
    detector_key_arn: str | None = None  # the stack's own key: topic, dead letters, logs, table
    approval_tag: str = DEFAULT_APPROVAL_TAG  # the bucket tag key that approves public access

    def is_trail(self, name_or_arn: str | None) -> bool:
        """Whether ``name_or_arn`` (as a CloudTrail request names a trail) is the detector's trail."""
        if not self.trail_name or not name_or_arn:
            return False
        return trail_short_name(name_or_arn) == trail_short_name(self.trail_name)

    def is_trail_key(self, key_refs: list[str]) -> bool:
        """Whether one of ``key_refs`` (key ids or ARNs) is the key encrypting the detector's trail."""
        return _key_matches(self.trail_key_arn, key_refs)

    def key_roles(self, key_refs: list[str]) -> list[str]:
        """What the detector uses a key for, when one of ``key_refs`` (ids or ARNs) is its key."""
        roles = []
        if self.is_trail_key(key_refs):
            roles.append("the key encrypting the detector's trail logs")
        if _key_matches(self.detector_key_arn, key_refs):
            roles.append("the detector's own key (alert topic, dead letters, function logs and settings)")
        return roles

    @property
    def key_arns(self) -> tuple[str, ...]:
        """The distinct key ARNs the detector depends on."""
        return tuple(dict.fromkeys(arn for arn in (self.trail_key_arn, self.detector_key_arn) if arn))

    def to_environment(self) -> dict[str, str]:
        """The response function's environment variables for this context (unset trail fields empty)."""
        return {name: getattr(self, field) or "" for name, field in ENVIRONMENT.items()}


NO_CONTEXT = DetectorContext()


def trail_short_name(name_or_arn: str) -> str:
    """``arn:aws:cloudtrail:eu-west-1:111:trail/org`` and ``org`` both become ``org``."""
    return name_or_arn.rsplit(":trail/", 1)[-1] if name_or_arn.startswith("arn:") else name_or_arn


def key_id_of(arn: str) -> str:
    """The key id (a UUID, or ``mrk-...``) at the end of a key ARN; the value itself if not an ARN."""
    return arn.rsplit("key/", 1)[-1] if arn.startswith("arn:") else arn


def _key_matches(key_arn: str | None, key_refs: list[str]) -> bool:
    # Requests name a key by id or by ARN (aliases are not accepted by the calls we watch).
    if not key_arn:
        return False
    return any(ref == key_arn or ref == key_id_of(key_arn) for ref in key_refs)


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _context(values: dict[str, str | None]) -> DetectorContext:
    # An empty approval tag would match nothing and silence the approval rule: use the default.
    return DetectorContext(
        trail_name=values.get("trail_name"),
        trail_bucket=values.get("trail_bucket"),
        trail_key_arn=values.get("trail_key_arn"),
        detector_key_arn=values.get("detector_key_arn"),
        approval_tag=values.get("approval_tag") or DEFAULTS["approval_tag"],
    )


def from_environment(environ: Mapping[str, str]) -> DetectorContext:
    """The context from ``TRAIL_NAME``, ``TRAIL_BUCKET``, ``TRAIL_KMS_KEY_ARN``, ``DETECTOR_KMS_KEY_ARN``
    and ``APPROVAL_TAG`` (the default when unset)."""
    return _context({field: _text(environ.get(name)) for name, field in ENVIRONMENT.items()})


def from_mapping(values: Mapping[str, Any] | None) -> DetectorContext:
    """The context from a dataset case's ``context`` object (camelCase keys; unknown keys raise)."""
    if not values:
        return NO_CONTEXT
    unknown = set(values) - set(DATASET_KEYS)
    if unknown:
        raise ValueError(f"unknown context keys {sorted(unknown)}; allowed: {sorted(DATASET_KEYS)}")
    return _context({field: _text(values.get(key)) for key, field in DATASET_KEYS.items()})
