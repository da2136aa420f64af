"""``detect PATH...``: run the classifier over CloudTrail files and print one JSON finding per line.

Output contract:

* stdout holds findings only, one JSON object per line (the fields of
  :class:`handlers.finding.Finding`), in input order: paths in the order given,
  directories walked in sorted order, records in file order.
* stderr holds everything else: one line per unreadable file, then a summary.
* Exit status: 0 when every input was read, whatever was found; 2 when any input could
  not be read (missing path, unreadable file, truncated or corrupt gzip, malformed JSON,
  bad text encoding). Reading carries on past a bad file, so one damaged file in an
  archive does not hide the findings of the others; every bad file is named on stderr.
  Usage errors also exit 2. An empty file is a warning, not an error.

Speed: a file is decompressed whole (up to 64 MiB; larger ones are streamed) and a
bytes-level prefilter (:mod:`handlers.prefilter`) decides whether it can hold a watched
event at all; only such files are parsed. Files are spread over worker processes (one
per core). A file the prefilter skips is not parsed, so JSON damage inside it is not
seen unless it breaks the file's outline (first and last character) or its gzip
stream; ``--strict`` parses every file in full.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from multiprocessing import Pool
from typing import TextIO

from handlers.classify import classify, unwrap
from handlers.cloudtrail_files import (
    IN_MEMORY_LIMIT,
    InputError,
    ParseProblems,
    find_input_files,
    iter_binary_chunks,
    iter_json_values,
    iter_records,
    read_bounded,
    text_buffer_for,
)
from handlers.prefilter import ChunkedPrefilter, count_records, may_contain_watched, watch_for
from handlers.records import as_text
from handlers.rules import watched_event_names
from handlers.rules.detector_context import DEFAULT_APPROVAL_TAG, NO_CONTEXT, DetectorContext

VERDICTS = ("public", "weakening", "attempt", "undetermined", "tamper", "approval")

_LEADING_WS = re.compile(rb"[ \t\r\n]*")
_JSON_WS = b" \t\r\n"


@dataclass
class FileReport:
    """What reading one file produced; small and picklable so workers can send it back."""

    path: str
    records: int = 0
    watched: int = 0
    not_records: int = 0  # decoded values that are not objects (e.g. numbers in an array)
    parsed: bool = False
    ruled_out: bool = False  # the prefilter showed it cannot hold a watched event, so it was not parsed
    findings: list[str] = field(default_factory=list)  # JSON lines
    verdicts: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _outline_error(path: str, first: bytes, last: bytes) -> str | None:
    """Cheap sanity check of a file that is not parsed: its outline must be JSON's.

    A JSON document or JSON Lines file starts with '{' or '[' and ends with '}' or ']'; an
    array ends with ']'. This catches text that is not JSON and most truncations.
    """
    if first not in (b"{", b"[") or last not in (b"}", b"]") or (first == b"[" and last != b"]"):
        return (
            f"{path}: not a JSON document or JSON Lines: it starts with {first!r} and ends with {last!r}"
            " (run with --strict for the exact place)"
        )
    return None


def _last_non_ws(data: bytes) -> bytes:
    end = len(data)
    while end and data[end - 1] in _JSON_WS:
        end -= 1
    return data[end - 1 : end]


def _classify_all(report: FileReport, values: Iterator[object], context: DetectorContext) -> None:
    for record in iter_records(values):
        inner = unwrap(record)
        # A record names its call; other values (numbers, manifests, ...) are counted, not classified.
        if inner is None or ("eventName" not in inner and "eventVersion" not in inner):
            report.not_records += 1
            continue
        report.records += 1
        if as_text(inner.get("eventName")) in watched_event_names(context):
            report.watched += 1
        for finding in classify(record, context):
            report.findings.append(json.dumps(finding, separators=(",", ":")))
            report.verdicts[finding["verdict"]] += 1


def scan_file(
    path: str, strict: bool = False, limit: int = IN_MEMORY_LIMIT, context: DetectorContext = NO_CONTEXT
) -> FileReport:
    """Read one file and classify every record in it that can matter; never raises on bad input.

    ``context`` names the detector's trail, bucket and keys (``--trail-*``), so tampering with
    them is reported too, and the approval tag (``--approval-tag``).
    """
    report = FileReport(path)
    # Calls whose rules need context this run lacks cannot yield a finding: no need to parse them.
    # Nor can a tagging call that does not name the approval tag (the conditional names).
    watched, conditional = watch_for(context)
    try:
        data = read_bounded(path, limit)
        if data is not None:
            start = _LEADING_WS.match(data).end()  # type: ignore[union-attr]
            if start == len(data):
                report.warnings.append(f"{path}: empty file, no records")
                return report
            if not strict and not may_contain_watched(data, watched, conditional):
                outline = _outline_error(path, data[start : start + 1], _last_non_ws(data))
                if outline:
                    report.errors.append(outline)
                report.ruled_out = True
                report.records = count_records(data)
                return report
        elif not strict:
            prefilter = ChunkedPrefilter(watched, conditional)
            first, last = b"", b""
            for chunk in iter_binary_chunks(path):
                prefilter.feed(chunk)
                if prefilter.candidate:
                    break  # it gets parsed; the rest of this pass would tell nothing more
                if not first and chunk.strip(_JSON_WS):
                    first = chunk.lstrip(_JSON_WS)[:1]
                last = _last_non_ws(chunk) or last
            if not prefilter.candidate:
                outline = _outline_error(path, first, last)
                if outline:
                    report.errors.append(outline)
                report.ruled_out = True
                report.records = prefilter.records
                return report
        report.parsed = True
        buffer = text_buffer_for(path, data)
        problems = ParseProblems()
        try:
            _classify_all(report, iter_json_values(buffer, problems), context)
        finally:
            buffer.close()
        report.errors.extend(problems.errors)
        if problems.count > len(problems.errors):
            report.errors.append(f"{path}: {problems.count - len(problems.errors)} more malformed lines")
    except InputError as exc:
        report.errors.append(str(exc))
    return report


def scan_files(
    files: Sequence[str], jobs: int, strict: bool, context: DetectorContext = NO_CONTEXT
) -> Iterator[FileReport]:
    """Reports for ``files`` in the same order, read by up to ``jobs`` worker processes."""
    scan = partial(scan_file, strict=strict, context=context)
    if jobs <= 1 or len(files) <= 1:
        yield from map(scan, files)
        return
    jobs = min(jobs, len(files))
    # Small batches keep both workers busy to the end while amortising the IPC per file.
    chunksize = max(1, min(16, len(files) // (jobs * 16)))
    with Pool(jobs) as pool:
        yield from pool.imap(scan, files, chunksize)


@dataclass
class Summary:
    """Counts for the closing lines on stderr."""

    files: int = 0
    parsed: int = 0
    ruled_out: int = 0
    records: int = 0
    counted: int = 0  # records counted by the "eventVersion" key in files the prefilter skipped
    watched: int = 0
    not_records: int = 0
    bad_files: int = 0
    ignored_files: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)

    def add(self, report: FileReport) -> None:
        self.files += 1
        self.parsed += report.parsed
        self.ruled_out += report.ruled_out
        self.records += report.records
        if report.ruled_out:
            self.counted += report.records
        self.watched += report.watched
        self.not_records += report.not_records
        self.bad_files += bool(report.errors)
        self.verdicts.update(report.verdicts)

    def lines(self, elapsed: float, jobs: int) -> list[str]:
        findings = sum(self.verdicts.values())
        by_verdict = ", ".join(f"{v} {self.verdicts[v]}" for v in VERDICTS)
        rate = self.records / elapsed if elapsed > 0 else 0.0
        lines = [
            f"detect: files {self.files} (parsed {self.parsed}, ruled out by the prefilter "
            f"{self.ruled_out}, unreadable {self.bad_files}, "
            f"ignored in directories {self.ignored_files})",
            f'detect: records {self.records} (of which {self.counted} counted by their "eventVersion" key '
            f"in files not parsed), watched {self.watched}"
            + (f", values that are not records {self.not_records}" if self.not_records else ""),
            f"detect: findings {findings} ({by_verdict})",
            f"detect: elapsed {elapsed:.2f} s, {rate:,.0f} records/s, {jobs} worker(s)",
        ]
        return lines


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="detect",
        description="Find S3 buckets and objects made public in CloudTrail files. "
        "Findings go to stdout as JSON lines; errors and a summary go to stderr.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files or directories (read recursively)")
    parser.add_argument(
        "--jobs",
        "-j",
        type=int,
        default=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1,
        help="worker processes (default: one per available core)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="parse every file in full instead of skipping files that cannot hold a watched event; "
        "slower, but reports any malformed JSON",
    )
    trail = parser.add_argument_group(
        "detector context",
        "name the detector's own trail, log bucket and keys to report tampering with them, "
        "and the approval tag the deployment uses",
    )
    trail.add_argument("--trail-name", metavar="NAME", help="the detector's trail (name or ARN)")
    trail.add_argument("--trail-bucket", metavar="BUCKET", help="the bucket the detector's trail writes to")
    trail.add_argument("--trail-key", metavar="KEY_ARN", help="the KMS key ARN encrypting the trail's logs")
    trail.add_argument(
        "--detector-key", metavar="KEY_ARN", help="the detector's own KMS key ARN (topic, queues, logs)"
    )
    trail.add_argument(
        "--approval-tag",
        metavar="KEY",
        default=DEFAULT_APPROVAL_TAG,
        help=f"the bucket tag key approving public access (exceptions.approval_tag; "
        f"default {DEFAULT_APPROVAL_TAG}): setting it or deleting a bucket's tags is reported",
    )
    return parser


def main(
    argv: Sequence[str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Run ``detect``; returns the exit status (0 read everything, 2 some input was unreadable)."""
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse prints its own message on sys.stderr
        return int(exc.code or 0)
    started = time.perf_counter()
    walk = find_input_files(args.paths)
    for message in walk.errors:
        print(f"detect: error: {message}", file=err)
    summary = Summary(ignored_files=walk.ignored)
    context = DetectorContext(
        trail_name=args.trail_name,
        trail_bucket=args.trail_bucket,
        trail_key_arn=args.trail_key,
        detector_key_arn=args.detector_key,
        approval_tag=args.approval_tag.strip() or DEFAULT_APPROVAL_TAG,
    )
    try:
        for report in scan_files(walk.files, args.jobs, args.strict, context):
            for line in report.findings:
                out.write(line + "\n")
            for message in report.warnings:
                print(f"detect: warning: {message}", file=err)
            for message in report.errors:
                print(f"detect: error: {message}", file=err)
            summary.add(report)
        out.flush()
    except BrokenPipeError:  # e.g. `detect ... | head`: the reader has gone, so stop quietly
        return 1
    workers = max(1, min(args.jobs, len(walk.files)))
    for line in summary.lines(time.perf_counter() - started, workers):
        print(line, file=err)
    return 2 if walk.errors or summary.bad_files else 0


if __name__ == "__main__":
    status = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        # Python would complain about the broken pipe again at exit; point stdout elsewhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(status)
