"""Load the labelled CloudTrail dataset under ``dataset/`` (one JSON file per case).

Each file holds ``description``, ``provenance``, ``expect``, a full CloudTrail
``record`` and, optionally, a ``context``: the detector's own trail, bucket and keys, or
its approval tag, the case is labelled under (:mod:`handlers.detection.rules.detector_context`).
The directory names the
rule module that reads the record (or ``routine`` for calls no rule reads). A malformed case file raises
:class:`DatasetError` naming the file and the field, so a typo fails loudly instead
of silently dropping a case.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, get_args

from handlers.detection.finding import Route
from handlers.detection.rules import TARGET_LABELS
from handlers.detection.rules.detector_context import NO_CONTEXT, DetectorContext, from_mapping

DATASET_DIR = Path(__file__).resolve().parents[1] / "dataset"

VERDICTS = frozenset({"public", "weakening", "attempt", "undetermined", "tamper", "approval", "none"})
ROUTES = frozenset(get_args(Route))  # defined once, in handlers.detection.finding
VARIANTS = frozenset({"body", "header", "unknown"})
# Buckets, objects, accounts and trails, plus the targets the rules declare (access points, ...).
SCOPES = frozenset({"bucket", "object", "account", "trail", *TARGET_LABELS})
ACCESS = frozenset({"read", "write", "acl-read", "acl-write", "policy-write", "all", "other"})
# "bucket" names the bucket a finding is about when it is not the one the call addressed
# (PutBucketLogging exposes the log *target* bucket).
EXPECT_KEYS = frozenset({"verdict", "kind", "variant", "route", "access", "scope", "bucket"})
REQUIRED_RECORD_KEYS = ("eventVersion", "eventTime", "eventSource", "eventName", "awsRegion", "eventID")

# Verdicts that must alert (positives) and those that must not (negatives); undetermined is
# neither. An approval opens nothing by itself but exempts a bucket from remediation, so it is a
# positive: a low-severity audit alert that must arrive.
POSITIVE_VERDICTS = frozenset({"public", "weakening", "tamper", "approval"})
NEGATIVE_VERDICTS = frozenset({"none", "attempt"})


class DatasetError(ValueError):
    """A case file that does not follow the dataset format."""


@dataclass(frozen=True)
class Case:
    """One labelled CloudTrail record."""

    id: str  # "<dir>/<slug>"
    path: Path
    description: str
    provenance: str
    expect: dict[str, Any]
    record: dict[str, Any]
    detector: DetectorContext = NO_CONTEXT  # from the optional top-level "context"

    @property
    def rule(self) -> str:
        """The directory: the rule module that reads the record, or ``routine``."""
        return self.id.split("/", 1)[0]

    @property
    def verdict(self) -> str:
        return self.expect["verdict"]


def _fail(path: Path, message: str) -> DatasetError:
    return DatasetError(f"{path}: {message}")


def _check_choice(path: Path, expect: dict[str, Any], key: str, allowed: frozenset[str]) -> None:
    if key in expect and expect[key] not in allowed:
        raise _fail(path, f"expect.{key} is {expect[key]!r}, expected one of {sorted(allowed)}")


def parse_case(path: Path, root: Path = DATASET_DIR) -> Case:
    """Read and validate one case file."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _fail(path, f"not readable JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise _fail(path, "the file must hold a JSON object")
    for key in ("description", "provenance"):
        if not isinstance(doc.get(key), str) or not doc[key].strip():
            raise _fail(path, f"{key!r} must be a non-empty string")
    expect = doc.get("expect")
    if not isinstance(expect, dict):
        raise _fail(path, "'expect' must be an object")
    unknown = set(expect) - EXPECT_KEYS
    if unknown:
        raise _fail(path, f"expect has unknown keys {sorted(unknown)}; allowed: {sorted(EXPECT_KEYS)}")
    if expect.get("verdict") not in VERDICTS:
        raise _fail(path, f"expect.verdict is {expect.get('verdict')!r}, expected one of {sorted(VERDICTS)}")
    if expect["verdict"] == "none" and set(expect) != {"verdict"}:
        raise _fail(path, "a 'none' case labels only the verdict")
    if expect["verdict"] != "none" and not isinstance(expect.get("kind"), str):
        raise _fail(path, f"expect.kind is required for verdict {expect['verdict']!r}")
    _check_choice(path, expect, "route", ROUTES)
    _check_choice(path, expect, "variant", VARIANTS)
    _check_choice(path, expect, "scope", SCOPES)
    if "access" in expect:
        access = expect["access"]
        if not isinstance(access, list) or not set(access) <= ACCESS:
            raise _fail(path, f"expect.access must be a list drawn from {sorted(ACCESS)}, got {access!r}")
    record = doc.get("record")
    if not isinstance(record, dict):
        raise _fail(path, "'record' must be a CloudTrail record object")
    for key in REQUIRED_RECORD_KEYS:
        if not isinstance(record.get(key), str) or not record[key]:
            raise _fail(path, f"record.{key} must be a non-empty string")
    try:
        detector = from_mapping(doc.get("context"))
    except (TypeError, ValueError, AttributeError) as exc:
        raise _fail(path, f"'context': {exc}") from None
    relative = path.relative_to(root)
    if len(relative.parts) != 2:
        raise _fail(path, "case files live exactly one directory deep: dataset/<rule>/<slug>.json")
    case_id = f"{relative.parts[0]}/{path.stem}"
    return Case(case_id, path, doc["description"], doc["provenance"], expect, record, detector)


def load_cases_from(root: Path) -> list[Case]:
    """All cases under ``root``, sorted by id; raises :class:`DatasetError` on any bad file."""
    if not root.is_dir():
        raise DatasetError(f"{root}: the dataset directory does not exist")
    cases = [parse_case(path, root) for path in sorted(root.glob("*/*.json"))]
    seen: dict[str, str] = {}
    for case in cases:
        event_id = case.record["eventID"]
        if event_id in seen:
            raise _fail(case.path, f"record.eventID {event_id} is already used by {seen[event_id]}")
        seen[event_id] = case.id
    return cases


@cache
def _cached_cases() -> tuple[Case, ...]:
    return tuple(load_cases_from(DATASET_DIR))


def load_cases() -> list[Case]:
    """The labelled dataset (parsed once per process). Records are shared: copy before mutating."""
    return list(_cached_cases())
