"""Real CloudTrail logs (invictus-aws) must classify cleanly: nothing public, nothing weakened.

The corpus lives beside the repository (``../shared/corpora/invictus-aws``) and is
read in place, never copied into the project.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from handlers.detection.classify import classify

CORPUS = Path(__file__).resolve().parents[1].parent / "shared/corpora/invictus-aws"
FILES = sorted(CORPUS.glob("**/*.json")) if CORPUS.is_dir() else []

pytestmark = pytest.mark.skipif(not FILES, reason=f"real CloudTrail corpus not found at {CORPUS}")


def corpus_records() -> list[dict]:
    records = []
    for path in FILES:
        document = json.loads(path.read_text(encoding="utf-8"))
        records.extend(document.get("Records", []) if isinstance(document, dict) else document)
    return records


def test_corpus_is_real_cloudtrail_with_s3_calls() -> None:
    records = corpus_records()
    s3 = [r for r in records if r.get("eventSource") == "s3.amazonaws.com"]
    assert len(records) > 1000 and s3
    # the watched calls the corpus holds, so this test exercises the rules, not just the filter
    assert {"PutBucketPolicy", "CreateBucket"} <= {r["eventName"] for r in s3}


def test_nothing_in_the_real_corpus_is_public_or_weakening() -> None:
    findings = [finding for record in corpus_records() for finding in classify(record)]
    exposing = [f for f in findings if f["verdict"] in ("public", "weakening", "undetermined")]
    assert not exposing, [(f["eventName"], f["bucket"], f["reasons"]) for f in exposing]


def test_attempts_in_the_real_corpus_are_truly_failed_calls() -> None:
    by_id = {r.get("eventID"): r for r in corpus_records()}
    for finding in (f for r in by_id.values() for f in classify(r)):
        if finding["verdict"] == "attempt":
            assert by_id[finding["eventID"]].get("errorCode"), finding
            assert finding["severity"] == "low"
