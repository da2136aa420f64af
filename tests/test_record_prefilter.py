"""The record-level prefilter (``handlers.offline.prefilter.records_to_parse``) never changes what
detect finds.

detect parses only the records holding a watched ``eventName`` in a file CloudTrail wrote; in
any file where that cannot be shown exact it parses the file whole. Each test compares detect's
output with the record-level shortcut against the same run with the shortcut switched off (a
full parse of every candidate file, as before) and against ``--strict``, over generated dense
archives, the labelled dataset and the real invictus-aws corpus (read in place), for several
detector contexts.
"""

from __future__ import annotations

import copy
import gzip
import io
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from benchmarks.gen_archive import NOISE, _record, generate
from demo.dataset_loader import load_cases
from handlers.detection.rules import watched_event_names
from handlers.detection.rules.detector_context import NO_CONTEXT, DetectorContext
from handlers.offline import detect_cli, prefilter
from handlers.offline.detect_cli import scan_file
from handlers.offline.prefilter import record_tests, records_to_parse

CORPUS = Path(__file__).resolve().parents[1].parent / "shared/corpora/invictus-aws"

# Detector contexts ("profiles" of a deployment): none, every trail field, another approval tag.
CONTEXTS: list[list[str]] = [
    [],
    [
        "--trail-name",
        "org-trail",
        "--trail-bucket",
        "acme-logs-prod",
        "--trail-key",
        "arn:aws:kms:us-east-1:318473062105:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "--detector-key",
        "arn:aws:kms:us-east-1:318473062105:key/0000abcd-12ab-34cd-56ef-1234567890ab",
    ],
    ["--approval-tag", "public-ok"],
]


def run_detect(
    args: list[str], *, record_level: bool, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str, str]:
    """detect in process (one job, so the switch below applies): status, stdout, the error lines."""
    with monkeypatch.context() as patch:
        if not record_level:
            patch.setattr(detect_cli, "records_to_parse", lambda data, context=NO_CONTEXT: None)
        out, err = io.StringIO(), io.StringIO()
        status = detect_cli.main([*args, "--jobs", "1"], out, err)
    errors = "\n".join(line for line in err.getvalue().splitlines() if "error" in line)
    return status, out.getvalue(), errors


def assert_same_findings(paths: list[str], monkeypatch: pytest.MonkeyPatch) -> str:
    """Record level, full parse and --strict agree for every context; returns the default run's output."""
    first = ""
    for context in CONTEXTS:
        fast = run_detect([*paths, *context], record_level=True, monkeypatch=monkeypatch)
        whole = run_detect([*paths, *context], record_level=False, monkeypatch=monkeypatch)
        strict = run_detect([*paths, *context, "--strict"], record_level=True, monkeypatch=monkeypatch)
        assert fast == whole, context
        assert fast[1] == strict[1], context
        first = first or fast[1]
    return first


def by_record(path: Path, context: DetectorContext = NO_CONTEXT) -> bool:
    return scan_file(str(path), context=context).by_record


# --- generated dense archives -------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["dense", "data-events"])
def test_dense_archives_give_the_same_findings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, profile: str
) -> None:
    manifest = generate(str(tmp_path), 12_000, seed=3, jobs=1, profile=profile)
    out = assert_same_findings([str(tmp_path)], monkeypatch)
    assert out.count("\n") > 20  # the archive holds public and weakening calls
    files = [tmp_path / name for name in manifest["files"]]
    assert all(by_record(path) for path in files)  # the shortcut was taken, not a fallback
    report = scan_file(str(files[0]))
    strict = scan_file(str(files[0]), strict=True)
    assert (report.records, report.watched) == (strict.records, strict.watched)


def test_data_events_parse_only_puts_with_an_acl(tmp_path: Path) -> None:
    manifest = generate(str(tmp_path), 6_000, seed=5, jobs=1, profile="data-events")
    parsed = skipped = 0
    for name in manifest["files"]:
        plan = records_to_parse(gzip.decompress((tmp_path / name).read_bytes()))
        assert plan is not None
        parsed += len(plan.records)
        skipped += plan.skipped
    assert skipped > 10 * parsed  # the PutObject data events without an ACL are not parsed


# --- the labelled dataset and the real corpus ---------------------------------------------------


def dataset_files(root: Path, rng: random.Random) -> Iterator[Path]:
    """The labelled records in compact CloudTrail files, among noise, eventVersion first."""
    cases = [case for case in load_cases() if isinstance(case.record.get("eventVersion"), str)]
    for index in range(0, len(cases), 7):
        records: list[dict[str, Any]] = []
        for case in cases[index : index + 7]:
            record = copy.deepcopy(case.record)
            records.append({"eventVersion": record.pop("eventVersion"), **record})
            source, name, _ = rng.choice(NOISE)
            records.append(_record(rng, _when(), "us-east-1", source, name))
        path = root / f"cases-{index:04d}.json"
        path.write_text(json.dumps({"Records": records}, separators=(",", ":")))
        yield path


def _when() -> datetime:
    return datetime(2024, 5, 1, tzinfo=UTC)


def test_labelled_dataset_gives_the_same_findings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = list(dataset_files(tmp_path, random.Random(11)))
    out = assert_same_findings([str(tmp_path)], monkeypatch)
    assert '"verdict":"public"' in out
    assert sum(by_record(path) for path in files) > len(files) // 2
    # The dataset as it is stored (one case per pretty-printed file): always a full parse.
    assert_same_findings(["dataset"], monkeypatch)


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"real CloudTrail corpus not found at {CORPUS}")
def test_real_corpus_gives_the_same_findings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert_same_findings([str(CORPUS)], monkeypatch)
    files = sorted(CORPUS.glob("**/*.json"))
    taken = [path for path in files if by_record(path)]
    assert taken  # the real files are compact CloudTrail: the shortcut applies to them


# --- files the shortcut must not trust ----------------------------------------------------------


def noise(rng: random.Random, count: int) -> list[dict[str, Any]]:
    return [_record(rng, _when(), "eu-west-1", *rng.choice(NOISE)[:2]) for _ in range(count)]


PUBLIC_POLICY = {
    "eventVersion": "1.09",
    "eventTime": "2024-05-01T00:00:00Z",
    "eventSource": "s3.amazonaws.com",
    "eventName": "PutBucketPolicy",
    "awsRegion": "eu-west-1",
    "recipientAccountId": "318473062105",
    "eventID": "policy-1",
    "requestParameters": {
        "bucketName": "acme-static-site",
        "bucketPolicy": {
            "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*"}]
        },
    },
}


def put_object(key_name: str, value: str = "public-read", event_id: str = "put-1") -> dict[str, Any]:
    return {
        "eventVersion": "1.09",
        "eventTime": "2024-05-01T00:00:00Z",
        "eventSource": "s3.amazonaws.com",
        "eventName": "PutObject",
        "awsRegion": "eu-west-1",
        "recipientAccountId": "318473062105",
        "eventID": event_id,
        "requestParameters": {"bucketName": "acme-static-site", "key": "index.html", key_name: value},
    }


def write(path: Path, records: list[Any], **dump: Any) -> Path:
    path.write_text(json.dumps({"Records": records}, **(dump or {"separators": (",", ":")})))
    return path


def compare_file(path: Path, monkeypatch: pytest.MonkeyPatch, *, shortcut: bool) -> str:
    assert by_record(path) is shortcut
    return assert_same_findings([str(path)], monkeypatch)


def test_acl_headers_in_any_case_or_spelling_are_parsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(1)
    records = [
        *noise(rng, 20),
        put_object("x-amz-acl", "private", "plain-private"),
        put_object("X-Amz-Acl", event_id="mixed-case"),
        put_object("X-AMZ-GRANT-READ", 'uri="http://acs.amazonaws.com/groups/global/AllUsers"', "grant"),
        *noise(rng, 5),
        put_object("key2", "no acl", "no-acl"),
    ]
    path = write(tmp_path / "acl.json", records)
    text = path.read_text().replace('"key2"', '"x\\u002damz\\u002dacl"').replace('"no acl"', '"public-read"')
    path.write_text(text)  # an escaped '-' in the header name: still the x-amz-acl key
    out = compare_file(path, monkeypatch, shortcut=True)
    assert [json.loads(line)["eventID"] for line in out.splitlines()] == ["mixed-case", "grant", "no-acl"]


def test_only_puts_without_acl_text_are_skipped(tmp_path: Path) -> None:
    tests = record_tests()
    plain, grant = (json.dumps(put_object(key)).encode() for key in ("key2", "X-Amz-Grant-Full-Control"))
    assert not tests[b"PutObject"](plain, 0, len(plain))
    assert tests[b"PutObject"](grant, 0, len(grant))
    # In place: only the record's own range counts, not a neighbour's ACL.
    assert not tests[b"PutObject"](plain + grant, 0, len(plain))
    assert tests[b"PutObject"](plain + grant, len(plain), len(plain) + len(grant))
    assert tests[b"PutBucketPolicy"](b"", 0, 0)  # no condition: always parsed
    assert "PutObject" in watched_event_names()


@pytest.mark.parametrize(
    "shape",
    [
        "pretty",  # odd formatting
        "spaced-name",  # "eventName" : "..."
        "name-in-a-string",  # the watched text inside another string value
        "letter-escape",  # \u0050utBucketPolicy
        "nested-record",  # a record-shaped object inside a record
        "record-in-a-list",  # the same, as the middle of a list of objects: exactly a record's text
        "duplicate-name",  # a record holding two eventName keys (json keeps the last)
        "damaged-watched",  # the record to parse does not decode
        "list-name",  # a list-valued eventName
        "jsonl",  # one record per line
        "eventbridge",  # an envelope whose first key is eventVersion
    ],
)
def test_unusual_files_fall_back_to_a_full_parse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shape: str
) -> None:
    rng = random.Random(2)
    records: list[Any] = [*noise(rng, 10), copy.deepcopy(PUBLIC_POLICY), *noise(rng, 10)]
    path = tmp_path / f"{shape}.json"
    if shape == "pretty":
        write(path, records, indent=2)
    elif shape == "spaced-name":
        write(path, records, separators=(", ", ": "))
    elif shape == "name-in-a-string":
        records[3]["requestParameters"] = {'a"eventName': "PutBucketPolicy"}
        write(path, records)
    elif shape == "letter-escape":
        write(path, records)
        path.write_text(path.read_text().replace('"PutBucketPolicy"', '"\\u0050utBucketPolicy"'))
    elif shape == "nested-record":
        records[3]["requestParameters"] = {"copy": copy.deepcopy(PUBLIC_POLICY)}
        write(path, records)
    elif shape == "record-in-a-list":
        # Only a structural parse tells this from a record: the bytes around it are a record's.
        fake = {**copy.deepcopy(PUBLIC_POLICY), "eventID": "forged"}
        records[3]["requestParameters"] = {"items": [{"a": 1}, fake, {"eventVersion": "1.09"}]}
        records[11] = records[3]  # no real public policy left: a finding could only be the forgery
        write(path, [r for r in records if r.get("eventName") != "PutBucketPolicy"])
    elif shape == "duplicate-name":
        write(path, records)
        both = '"eventName":"PutBucketPolicy","eventName":"GetObject"'
        path.write_text(path.read_text().replace('"eventName":"PutBucketPolicy"', both))
    elif shape == "damaged-watched":
        write(path, records)
        path.write_text(path.read_text().replace('"Principal":"*"', '"Principal":*'))
    elif shape == "list-name":
        records[10]["eventName"] = ["PutBucketPolicy"]
        write(path, records)
    elif shape == "jsonl":
        path.write_text("\n".join(json.dumps(r, separators=(",", ":")) for r in records) + "\n")
    else:
        envelope = {
            "eventVersion": "1.09",
            "detail-type": "AWS API Call via CloudTrail",
            "detail": PUBLIC_POLICY,
        }
        records[10] = {**envelope, "eventName": "PutBucketPolicy"}
        write(path, records)
    out = compare_file(path, monkeypatch, shortcut=False)
    assert "forged" not in out


def test_without_simdjson_every_candidate_is_parsed_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The standard library alone cannot prove a record is top level: the shortcut is never taken."""
    manifest = generate(str(tmp_path), 3_000, seed=6, jobs=1, profile="dense")
    data = gzip.decompress((tmp_path / manifest["files"][0]).read_bytes())
    assert records_to_parse(data) is not None
    with_simdjson = assert_same_findings([str(tmp_path)], monkeypatch)
    monkeypatch.setattr(prefilter, "simdjson_module", lambda: None)
    assert records_to_parse(data) is None
    assert assert_same_findings([str(tmp_path)], monkeypatch) == with_simdjson


def test_records_are_counted_as_a_full_parse_counts_them(tmp_path: Path) -> None:
    rng = random.Random(4)
    path = write(tmp_path / "f.json", [*noise(rng, 30), PUBLIC_POLICY, put_object("k", "v"), *noise(rng, 3)])
    fast, strict = scan_file(str(path)), scan_file(str(path), strict=True)
    assert fast.by_record and not strict.by_record
    assert (fast.records, fast.watched, fast.findings) == (strict.records, strict.watched, strict.findings)


def test_keys_a_log_pipeline_rewrote_are_not_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Glue lower-cases keys (eventname): no "eventName" in the file, which is then parsed whole,
    read in memory or in chunks, and gives what --strict gives."""
    rng = random.Random(8)
    records = [*noise(rng, 40), {"eventVersion": "1.09", **copy.deepcopy(PUBLIC_POLICY)}, *noise(rng, 5)]
    lowered = [{key.lower(): value for key, value in record.items()} for record in records]
    path = write(tmp_path / "glue.json", lowered)
    assert b'"eventName"' not in path.read_bytes()
    out = compare_file(path, monkeypatch, shortcut=False)
    assert [json.loads(line)["eventID"] for line in out.splitlines()] == ["policy-1"]
    chunked = scan_file(str(path), limit=1024)  # above the in-memory limit: the streaming prefilter
    assert chunked.parsed and [json.loads(f)["eventID"] for f in chunked.findings] == ["policy-1"]
    empty = write(tmp_path / "empty.json", [])
    assert scan_file(str(empty)).records == 0 and not scan_file(str(empty)).errors
