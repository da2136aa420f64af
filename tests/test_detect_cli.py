"""The ``detect`` command: input shapes, output contract, exit codes and the prefilter's safety."""

from __future__ import annotations

import gzip
import io
import json
import random
import re
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handlers.detection import cloudtrail_files
from handlers.detection.finding import Finding
from handlers.detection.rules import REGISTRY, WATCHED_EVENT_NAMES, watched_event_names
from handlers.detection.rules.detector_context import DEFAULT_APPROVAL_TAG, DetectorContext
from handlers.offline import detect_cli
from handlers.offline.detect_cli import main, scan_file
from handlers.offline.prefilter import ChunkedPrefilter, may_contain_watched, watch_for

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpora" / "invictus-aws" / "CloudTrail"
FINDING_FIELDS = set(Finding.__annotations__)
SOURCE_OF = {name: source for source, name in REGISTRY}


def noise(n: int) -> dict[str, Any]:
    return {
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/ops"},
        "eventTime": "2024-03-01T00:00:00Z",
        "eventSource": "ec2.amazonaws.com",
        "eventName": "DescribeInstances",
        "awsRegion": "eu-west-1",
        "sourceIPAddress": "203.0.113.7",
        "userAgent": "aws-cli/2.15.30",
        # IAM documents quote S3 actions: bytes that must not fool the prefilter into a false alarm.
        "requestParameters": {"note": "s3:PutBucketPolicy PutObject", "filter": {"name": "CreateBucketX"}},
        "responseElements": None,
        "eventID": f"noise-{n}",
        "recipientAccountId": "111122223333",
    }


def public_policy(event_id: str = "exposed-1") -> dict[str, Any]:
    return {
        **noise(0),
        "eventSource": "s3.amazonaws.com",
        "eventName": "PutBucketPolicy",
        "eventID": event_id,
        "requestParameters": {
            "bucketName": "acme-exposed",
            "bucketPolicy": {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*"}
                ],
            },
        },
    }


def run(*args: str) -> tuple[int, list[dict[str, Any]], str]:
    """main() in process: exit status, parsed stdout lines, stderr."""
    out, err = io.StringIO(), io.StringIO()
    status = main(list(args), out, err)
    lines = out.getvalue().splitlines()
    return status, [json.loads(line) for line in lines], err.getvalue()


def write(path: Path, text: str, compress: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text.encode()) if compress else text.encode())
    return path


EXPOSED = public_policy()
ENVELOPE = {
    "version": "0",
    "detail-type": "AWS API Call via CloudTrail",
    "source": "aws.s3",
    "detail": EXPOSED,
}
NOISE = [noise(n) for n in range(3)]

FORMATS: dict[str, tuple[str, str]] = {
    "cloudtrail.json": ("x.json", json.dumps({"Records": [*NOISE, EXPOSED]}, separators=(",", ":"))),
    "cloudtrail.json.gz": ("x.json.gz", json.dumps({"Records": [*NOISE, EXPOSED]}, separators=(",", ":"))),
    "pretty-array": ("x.json", json.dumps([*NOISE, EXPOSED], indent=4)),
    "single-record": ("x.json", json.dumps(EXPOSED)),
    "json-lines": ("x.jsonl", "\n".join(json.dumps(r) for r in [*NOISE, EXPOSED])),
    "json-lines.gz": ("x.jsonl.gz", "\n".join(json.dumps(r) for r in [*NOISE, EXPOSED])),
    "eventbridge": ("x.json", json.dumps(ENVELOPE)),
    "eventbridge-lines": ("x.ndjson", json.dumps(noise(5)) + "\n" + json.dumps(ENVELOPE)),
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_input_format_yields_the_exposure(tmp_path: Path, fmt: str) -> None:
    name, text = FORMATS[fmt]
    path = write(tmp_path / name, text, compress=name.endswith(".gz"))
    status, findings, err = run(str(path))
    assert status == 0, err
    assert [(f["eventID"], f["verdict"], f["bucket"]) for f in findings] == [
        ("exposed-1", "public", "acme-exposed")
    ]


def test_nested_directories_are_read_in_sorted_order(tmp_path: Path) -> None:
    write(
        tmp_path / "b" / "deep" / "2.json.gz", json.dumps({"Records": [public_policy("e-3")]}), compress=True
    )
    write(
        tmp_path / "a" / "1.jsonl", json.dumps(public_policy("e-1")) + "\n" + json.dumps(public_policy("e-2"))
    )
    write(tmp_path / "a" / "notes.txt", json.dumps(public_policy("never-read")))
    status, findings, err = run(str(tmp_path), "--jobs", "1")
    assert status == 0, err
    assert [f["eventID"] for f in findings] == ["e-1", "e-2", "e-3"]
    assert "ignored in directories 1" in err
    # Two worker processes give the same lines in the same order.
    assert run(str(tmp_path), "--jobs", "2")[1] == findings


def test_stdout_holds_only_findings_and_stderr_the_summary(tmp_path: Path) -> None:
    write(tmp_path / "ok.json", json.dumps({"Records": [*NOISE, EXPOSED, public_policy("exposed-2")]}))
    write(tmp_path / "broken.json", '{"Records": [{"eventName": "PutBucketAcl",')
    out, err = io.StringIO(), io.StringIO()
    status = main([str(tmp_path)], out, err)
    assert status == 2
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    for line in lines:
        finding = json.loads(line)
        assert set(finding) == FINDING_FIELDS
    summary = err.getvalue()
    assert "records 5 " in summary
    assert "watched 2" in summary
    assert "findings 2 (public 2," in summary
    assert re.search(r"records/s", summary)
    assert "broken.json" in summary and "broken.json" not in out.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.json", b'{"Records": [{"eventName": "PutBucketPolicy", }]}', "malformed JSON at line 1"),
        ("cut-noise.json", b'[{"eventName": "DescribeVpcs"}, {"eventName": "Desc', "ends with b'c'"),
        ("cut-array.json", b'[{"eventName": "DescribeVpcs"}', "starts with b'[' and ends with b'}'"),
        ("cut.json.gz", gzip.compress(json.dumps({"Records": NOISE}).encode())[:-10], "truncated gzip"),
        # No "eventName" key at all (as in a pipeline's rewritten file): parsed, so the parser says where.
        ("text.json", b"hello", "malformed JSON at line 1 column 1"),
    ],
)
def test_unreadable_input_exits_2_naming_the_file_and_goes_on(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    (tmp_path / name).write_bytes(content)
    write(tmp_path / "zz-good.json", json.dumps(EXPOSED))
    status, findings, err = run(str(tmp_path))
    assert status == 2
    error_lines = [line for line in err.splitlines() if line.startswith("detect: error:")]
    assert len(error_lines) == 1
    assert str(tmp_path / name) in error_lines[0] and message in error_lines[0]
    assert [f["eventID"] for f in findings] == ["exposed-1"]  # the good file still counts
    assert "unreadable 1" in err


def test_damage_inside_a_skipped_file_needs_strict(tmp_path: Path) -> None:
    # The prefilter rules this file out, so only --strict parses it and finds the damage.
    path = write(tmp_path / "noise.json", '{"Records": [{"eventName": "DescribeVpcs"}, {oops}]}')
    assert run(str(path))[0] == 0
    status, _, err = run("--strict", str(path))
    assert status == 2
    assert f"{path}: malformed JSON at line 1" in err


def test_missing_path_exits_2(tmp_path: Path) -> None:
    status, findings, err = run(str(tmp_path / "nope"), str(write(tmp_path / "x.json", json.dumps(EXPOSED))))
    assert status == 2
    assert f"detect: error: {tmp_path / 'nope'}: no such file or directory" in err
    assert len(findings) == 1


def test_empty_file_is_a_warning_not_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty.json").write_bytes(b"")
    (tmp_path / "blank.jsonl").write_bytes(b"  \n\n")
    write(tmp_path / "empty.json.gz", "", compress=True)
    status, findings, err = run(str(tmp_path))
    assert status == 0
    assert findings == []
    assert err.count("detect: warning:") == 3 and "empty file" in err


def test_unreadable_file_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "locked.json", json.dumps(EXPOSED))

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("builtins.open", refuse)
    report = scan_file(str(path))
    assert report.errors == [f"{path}: cannot read: Permission denied"]


def test_watched_event_hidden_in_a_big_noise_file_is_found(tmp_path: Path) -> None:
    records = [noise(n) for n in range(20_000)]
    records[13_777] = public_policy("needle")
    write(
        tmp_path / "haystack.json.gz", json.dumps({"Records": records}, separators=(",", ":")), compress=True
    )
    write(tmp_path / "only-noise.json.gz", json.dumps({"Records": records[:5000]}), compress=True)
    status, findings, err = run(str(tmp_path))
    assert status == 0
    assert [f["eventID"] for f in findings] == ["needle"]
    assert "records 25000 " in err
    assert "parsed 1, ruled out by the prefilter 1" in err


def test_a_huge_file_is_streamed_with_the_same_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = [noise(n) for n in range(3000)]
    records[2999] = public_policy("tail")
    path = write(tmp_path / "huge.json", json.dumps(records))
    small = scan_file(str(path), limit=10_000)  # far below the file's size: the streaming path
    whole = scan_file(str(path))
    assert small.findings == whole.findings and len(whole.findings) == 1
    assert (small.records, small.parsed) == (3000, True)
    noise_only = write(tmp_path / "huge-noise.json", json.dumps(records[:2999]))
    skipped = scan_file(str(noise_only), limit=10_000)
    assert (skipped.records, skipped.parsed, skipped.ruled_out, skipped.errors) == (2999, False, True, [])


def test_a_large_json_lines_file_is_classified_in_bounded_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cloudtrail_files, "CHUNK_CHARS", 64 * 1024)
    path = tmp_path / "export.jsonl"
    with path.open("w") as out:
        for n in range(6000):
            line = public_policy(f"p-{n}") if n == 5000 else {**noise(n), "pad": "x" * 600}
            out.write(json.dumps(line) + "\n")
    size = path.stat().st_size
    tracemalloc.start()
    report = scan_file(str(path), limit=100_000)  # far below the file's size: streamed
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert (report.records, report.parsed, len(report.findings)) == (6000, True, 1)
    assert peak < size / 4, f"peak {peak} bytes for a {size} byte file"


# --- the prefilter must never drop a watched event -------------------------------------------

WHITESPACE = ["", " ", "\n", "\t", "\r\n", "  \n\t "]


def spell(record: dict[str, Any], ws_before: str, ws_after: str) -> str:
    """Compact JSON with chosen whitespace around every ':' (and so around eventName's)."""
    text = json.dumps(record, separators=(",", ":"))
    return text.replace('":', f'"{ws_before}:{ws_after}')


def escape_letter(text: str, word: str, index: int) -> str:
    """``text`` with the ``index``-th letter of every ``"word"`` written as a \\u escape."""
    escaped = word[:index] + f"\\u{ord(word[index]):04x}" + word[index + 1 :]
    return text.replace(f'"{word}"', f'"{escaped}"')


def watched_record(name: str) -> dict[str, Any]:
    record = {**public_policy(), "eventName": name, "eventSource": SOURCE_OF[name]}
    # A tagging call matters only when it names the approval tag (detect's conditional names).
    approval = {"TagSet": {"Tag": {"Key": DEFAULT_APPROVAL_TAG, "Value": "2030-01-01"}}}
    record["requestParameters"] = {**record["requestParameters"], "Tagging": approval}
    return record


@pytest.mark.parametrize("name", sorted(WATCHED_EVENT_NAMES))
def test_prefilter_keeps_every_watched_name_in_every_spelling(name: str) -> None:
    record = watched_record(name)
    spellings = [spell(record, before, after) for before in WHITESPACE for after in WHITESPACE]
    spellings += [json.dumps(record, indent=indent) for indent in (1, 2, "\t")]
    spellings += [escape_letter(spellings[0], name, i) for i in range(len(name))]
    spellings += [escape_letter(spellings[0], "eventName", i) for i in range(len("eventName"))]
    spellings.append(spellings[0].replace(f'"{name}"', f'["{name}"]'))  # old list-valued field
    spellings.append(json.dumps({"detail-type": "AWS API Call via CloudTrail", "detail": record}))
    for text in spellings:
        assert json.loads(text).get("eventName", name) in (name, [name]) or "detail" in text
        data = text.encode()
        assert may_contain_watched(data), text
        # As detect runs it without context: context-bound names left out, conditional ones in.
        in_detect = name in watched_event_names()
        assert may_contain_watched(data, *watch_for()) or not in_detect, text
        for size in (1, 3, 16, 64):  # every way of cutting the file into chunks
            for chunked in (ChunkedPrefilter(), *([ChunkedPrefilter(*watch_for())] if in_detect else [])):
                for start in range(0, len(data), size):
                    chunked.feed(data[start : start + size])
                assert chunked.candidate, (size, text)
    assert may_contain_watched(json.dumps(record, ensure_ascii=False).encode("utf-16"))


def test_prefilter_rules_out_noise_that_merely_mentions_watched_names() -> None:
    text = json.dumps({"Records": [noise(n) for n in range(50)]}, indent=2).encode()
    assert not may_contain_watched(text)
    chunked = ChunkedPrefilter()
    for start in range(0, len(text), 7):
        chunked.feed(text[start : start + 7])
    assert not chunked.candidate
    assert chunked.records == 50


@st.composite
def serialised_files(draw: st.DrawFn) -> tuple[bytes, str]:
    """A file of noise plus one watched record, serialised in a random but valid way."""
    name = draw(st.sampled_from(sorted(WATCHED_EVENT_NAMES)))
    records: list[dict[str, Any]] = [noise(n) for n in range(draw(st.integers(0, 5)))]
    watched = watched_record(name)
    records.insert(draw(st.integers(0, len(records))), watched)
    shape = draw(st.sampled_from(["records", "array", "lines", "eventbridge"]))
    indent = draw(st.sampled_from([None, 0, 1, 2, "\t"]))
    seps = draw(st.sampled_from([(",", ":"), (", ", ": "), (",", " : "), (" ,", ":\n")]))
    ascii_only = draw(st.booleans())

    def dump(value: Any) -> str:
        return json.dumps(value, indent=indent, separators=seps, ensure_ascii=ascii_only)

    if shape == "records":
        text = dump({"Records": records})
    elif shape == "array":
        text = dump(records)
    elif shape == "lines":
        text = "\n".join(json.dumps(r, separators=seps) for r in records)
    else:
        text = dump({"detail-type": "AWS API Call via CloudTrail", "source": "aws.s3", "detail": watched})
    rng = random.Random(draw(st.integers(0, 2**32)))
    for word in (name, "eventName"):
        if draw(st.booleans()):
            text = escape_letter(text, word, rng.randrange(len(word)))
    return text.encode(), name


@settings(max_examples=200, deadline=None)
@given(serialised_files())
def test_prefilter_never_changes_what_detect_finds(
    tmp_path_factory: pytest.TempPathFactory, sample: Any
) -> None:
    data, name = sample
    assert may_contain_watched(data)
    path = tmp_path_factory.mktemp("prop") / "sample.json"
    path.write_bytes(data)
    fast, strict = scan_file(str(path)), scan_file(str(path), strict=True)
    assert fast.errors == strict.errors == []
    assert fast.findings == strict.findings
    # Without detector context, calls only context-bound rules read (DeleteBucket, KMS) are not watched.
    assert fast.watched == strict.watched == (1 if name in watched_event_names() else 0)


def test_detector_context_widens_what_detect_parses(tmp_path: Path) -> None:
    record = {
        "eventVersion": "1.09",
        "eventSource": "s3.amazonaws.com",
        "eventName": "DeleteBucket",
        "eventID": "trail-bucket-gone",
        "recipientAccountId": "111122223333",
        "requestParameters": {"bucketName": "org-trail-logs"},
    }
    path = tmp_path / "one.json"
    path.write_text(json.dumps({"Records": [record]}))
    without = scan_file(str(path))
    assert without.ruled_out and not without.findings  # no rule can act on it: not even parsed
    with_context = scan_file(str(path), context=DetectorContext(trail_bucket="org-trail-logs"))
    assert with_context.parsed and [json.loads(f)["verdict"] for f in with_context.findings] == ["tamper"]


# --- end to end -------------------------------------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "handlers.offline.detect_cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_end_to_end(tmp_path: Path) -> None:
    write(tmp_path / "trail" / "a.json.gz", json.dumps({"Records": [*NOISE, EXPOSED]}), compress=True)
    done = cli(str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["eventID"] for line in done.stdout.splitlines()] == ["exposed-1"]
    assert "detect: findings 1 (public 1," in done.stderr


def test_cli_bad_input_and_usage(tmp_path: Path) -> None:
    done = cli(str(tmp_path / "missing.json"))
    assert done.returncode == 2 and done.stdout == ""
    assert f"{tmp_path / 'missing.json'}: no such file or directory" in done.stderr
    usage = cli()
    assert usage.returncode == 2 and "usage: detect" in usage.stderr and usage.stdout == ""


@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not present")
def test_real_corpus_reports_nothing_public() -> None:
    status, findings, err = run(str(CORPUS))
    assert status == 0, err
    assert not [f for f in findings if f["public"]]
    strict = run("--strict", str(CORPUS))
    assert strict[1] == findings  # the prefilter lost nothing on real logs
    assert "records 2900 " in err


def test_worker_count_defaults_to_available_cores() -> None:
    args = detect_cli._parser().parse_args(["x"])
    assert args.jobs >= 1
