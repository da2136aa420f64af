"""``detect PATH...``: run the classifier over CloudTrail files and print one JSON finding per line.

Where the logs are (:mod:`handlers.offline.detect_sources`):

* ``detect s3://BUCKET/PREFIX/ [--since T] [--until T] [--accounts A,B] [--regions R1,R2]``
  lists only the trail's day folders of the window and streams each object through the
  same per-file reading as a local file (:func:`scan_file` takes a path or a byte source).
* ``detect --lookup-events --since T [--until T] --regions R1,R2`` reads CloudTrail's
  90-day management event history, one watched event name per request, paced to 2
  requests per second per region; each event's record goes through the same classifier.

Order: S3 objects by account, region, day, then key (a local copy of the same keys walks
the same way, so the lines are identical); LookupEvents region by region, name by name,
newest first, each event once (by ``eventID``).

``--format ocsf`` prints each finding as an OCSF Detection Finding instead. A progress line
goes to stderr only when it is a terminal.

Output contract:

* stdout holds findings only, one JSON object per line (the fields of
  :class:`handlers.detection.finding.Finding`), in input order: paths in the order given,
  directories walked in sorted order, records in file order.
* stderr holds everything else: one line per unreadable file, then a summary.
* Exit status: 0 when every input was read, whatever was found; 2 when any input could
  not be read (missing path, unreadable file, truncated or corrupt gzip, malformed JSON,
  bad text encoding). Reading carries on past a bad file, so one damaged file in an
  archive does not hide the findings of the others; every bad file is named on stderr.
  Usage errors also exit 2. An empty file is a warning, not an error.

Speed: a file is decompressed whole (up to 64 MiB; larger ones are streamed) and a
bytes-level prefilter (:mod:`handlers.offline.prefilter`) decides whether it can hold a watched
event at all; only such files are parsed. In a file CloudTrail wrote (compact
``{"Records":[...]}``), only the records holding a watched ``eventName`` (and, for calls a
rule reads only with certain text, that text) are parsed
(:func:`handlers.offline.prefilter.records_to_parse`, which needs simdjson to prove that each is a
top-level record); any other file is parsed whole. Gzip is inflated by ISA-L when installed. Both
are the CLI's own dependencies, optional imports: without them detect finds the same, slower. Files are
spread over worker processes (one per core). A file the prefilter skips is not parsed, so
JSON damage inside it is not seen unless it breaks the file's outline (first and last character) or its gzip
stream (nor is damage outside the records parsed in a file read record by record);
``--strict`` parses every file in full.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from itertools import chain
from multiprocessing import Pool
from typing import TYPE_CHECKING, TextIO

from handlers.detection.classify import classify, unwrap
from handlers.detection.cloudtrail_files import (
    IN_MEMORY_LIMIT,
    InputError,
    ParseProblems,
    Source,
    find_input_files,
    iter_binary_chunks,
    iter_json_values,
    iter_records,
    read_bounded,
    source_name,
    text_buffer_for,
)
from handlers.detection.records import as_text, normalize_record
from handlers.detection.rules import watched_event_names
from handlers.detection.rules.detector_context import DEFAULT_APPROVAL_TAG, NO_CONTEXT, DetectorContext
from handlers.detection.timestamps import utc_text
from handlers.offline.prefilter import (
    ChunkedPrefilter,
    RecordPlan,
    count_records,
    may_contain_watched,
    records_to_parse,
    watch_for,
)

if TYPE_CHECKING:  # imported when needed: boto3 costs every local run a fifth of a second
    from handlers.offline import detect_sources

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
    by_record: bool = False  # only the records holding a watched name were parsed (see records_to_parse)
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
        inner = normalize_record(inner) if inner is not None else None  # a pipeline's "eventname" too
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


def _classify_plan(report: FileReport, plan: RecordPlan, context: DetectorContext) -> bool:
    """Parse and classify only the records of ``plan``; False (nothing done) when one of them is not
    the plain record it must be, so that the caller parses the file whole instead."""
    records = []
    for raw, name in plan.records:
        try:
            record = json.loads(raw)
        except ValueError:  # damaged, or not one object: only a full parse says what the file holds
            return False
        if (
            not isinstance(record, dict)
            or as_text(record.get("eventName")) != name.decode()
            or "Records" in record  # iter_records would open a nested Records list
            or ("detail" in record and "detail-type" in record)  # unwrap would read the envelope's detail
        ):
            return False
        records.append(record)
    _classify_all(report, iter(records), context)
    # As a full parse counts them: every record, and every record with a watched name.
    report.records = plan.total
    report.watched += plan.skipped
    report.parsed = report.by_record = True
    return True


def scan_file(
    source: Source, strict: bool = False, limit: int = IN_MEMORY_LIMIT, context: DetectorContext = NO_CONTEXT
) -> FileReport:
    """Read one file and classify every record in it that can matter; never raises on bad input.

    ``source`` is a local path or a :class:`~handlers.detection.cloudtrail_files.ByteSource` (an S3
    object): both take this same path. ``context`` names the detector's trail, bucket and
    keys (``--trail-*``), so tampering with them is reported too, and the approval tag
    (``--approval-tag``).
    """
    path = source_name(source)
    report = FileReport(path)
    # Calls whose rules need context this run lacks cannot yield a finding: no need to parse them.
    # Nor can a tagging call that does not name the approval tag (the conditional names).
    watched, conditional = watch_for(context)
    try:
        data = read_bounded(source, limit)
        if data is not None:
            start = _LEADING_WS.match(data).end()  # type: ignore[union-attr]  # matches "" at worst
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
            if not strict:
                plan = records_to_parse(data, context)
                if plan is not None and _classify_plan(report, plan, context):
                    return report
        elif not strict:
            prefilter = ChunkedPrefilter(watched, conditional)
            first, last = b"", b""
            for chunk in iter_binary_chunks(source):
                prefilter.feed(chunk)
                if prefilter.candidate:
                    break  # it gets parsed; the rest of this pass would tell nothing more
                if not first and chunk.strip(_JSON_WS):
                    first = chunk.lstrip(_JSON_WS)[:1]
                last = _last_non_ws(chunk) or last
            prefilter.finish()
            if not prefilter.candidate:
                outline = _outline_error(path, first, last)
                if outline:
                    report.errors.append(outline)
                report.ruled_out = True
                report.records = prefilter.records
                return report
        report.parsed = True
        buffer = text_buffer_for(source, data)
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
    files: Iterable[Source], jobs: int, strict: bool, context: DetectorContext = NO_CONTEXT
) -> Iterator[FileReport]:
    """Reports for ``files`` in the same order, read by up to ``jobs`` worker processes.

    ``files`` may be a lazy iterable (an S3 listing): the pool takes items as workers free up,
    so the listing runs alongside the reading and is never held whole.
    """
    scan = partial(scan_file, strict=strict, context=context)
    known = len(files) if isinstance(files, Sized) else None
    if jobs <= 1 or (known is not None and known <= 1):
        yield from map(scan, files)
        return
    chunksize = 1  # objects fetched over the network: one at a time keeps every worker busy
    if known is not None:
        jobs = min(jobs, known)
        # Small batches keep both workers busy to the end while amortising the IPC per file.
        chunksize = max(1, min(16, known // (jobs * 16)))
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


class Progress:
    """One self-overwriting status line on stderr, only when stderr is a terminal, a few times a second.

    Pipes and files (and the tests' streams) get nothing: the line is for a person watching.
    """

    def __init__(
        self, stream: TextIO, unit: str, clock: Callable[[], float] = time.monotonic, interval: float = 0.25
    ) -> None:
        self.stream = stream
        self.unit = unit
        self.clock = clock
        self.interval = interval
        try:
            self.enabled = bool(stream.isatty())
        except (AttributeError, ValueError):  # no isatty, or a closed stream
            self.enabled = False
        self.started = clock()
        self._last: float | None = None
        self._width = 0

    def update(self, done: int, total: int | None = None, *, extra: str = "", force: bool = False) -> None:
        """Show ``done`` of ``total`` (None: not known yet) with the rate; skipped if shown too recently."""
        if not self.enabled:
            return
        now = self.clock()
        if not force and self._last is not None and now - self._last < self.interval:
            return
        self._last = now
        elapsed = now - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        if total is None:
            text = f"detect: {done:,} {self.unit}, {rate:,.1f}/s{extra}"
        else:
            left = max(0, total - done)
            eta = f", about {left / rate:,.0f} s left" if rate > 0 and left else ""
            text = f"detect: {done:,}/{total:,} {self.unit}, {left:,} to go, {rate:,.1f}/s{eta}{extra}"
        self.stream.write("\r" + text + " " * max(0, self._width - len(text)))
        self.stream.flush()
        self._width = len(text)

    def clear(self) -> None:
        """Erase the line, so that what follows starts on a clean one."""
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0


class _Usage(Exception):
    """A command line that parses but makes no sense (exit 2)."""


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(part.strip() for part in (value or "").split(",") if part.strip()))


def _formatter(name: str) -> Callable[[str], str]:
    """Turns one finding's JSON line into the line to print for ``--format name``."""
    if name == "json":
        return lambda line: line
    # Imported here: detect works without the OCSF module, and only --format ocsf needs it.
    try:
        from handlers.offline.ocsf import detection_finding
    except ImportError as exc:
        raise _Usage(f"--format ocsf is not available: {exc}") from None

    def ocsf(line: str) -> str:
        return json.dumps(detection_finding(json.loads(line)), separators=(",", ":"))

    return ocsf


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="detect",
        description="Find S3 buckets and objects made public in CloudTrail logs: local files or "
        "directories, a trail's bucket (s3://BUCKET/PREFIX/), or CloudTrail's 90-day event history "
        "(--lookup-events). Findings go to stdout as JSON lines; errors and a summary go to stderr.",
    )
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="files or directories (read recursively), or s3://BUCKET/PREFIX/ "
        "(the trail's prefix, the part before AWSLogs/)",
    )
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
    parser.add_argument(
        "--format",
        choices=("json", "ocsf"),
        default="json",
        help="json: the finding's own fields (default); ocsf: an OCSF Detection Finding per line",
    )
    where = parser.add_argument_group(
        "reading from AWS",
        "s3://BUCKET/PREFIX/ lists only the day folders of the window; --lookup-events reads "
        "management events (not data events) of the last 90 days",
    )
    where.add_argument(
        "--lookup-events",
        action="store_true",
        help="read CloudTrail's event history with LookupEvents instead of files (needs --since)",
    )
    where.add_argument(
        "--since", metavar="T", help="start: ISO date or time (UTC unless given), or an age: 90d, 12h, 30m"
    )
    where.add_argument("--until", metavar="T", help="end, same forms (default: now)")
    where.add_argument(
        "--accounts", metavar="A,B", help="s3:// only: these accounts (default: every one found)"
    )
    where.add_argument(
        "--regions",
        metavar="R1,R2",
        help="these regions (default: every one found; --lookup-events: the configured one)",
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
    scale = parser.add_argument_group(
        "past one machine",
        "print a query for Athena's CloudTrail table or CloudTrail Lake that selects only the records "
        "some rule reads, then classify its results",
    )
    scale.add_argument(
        "--print-sql",
        choices=("athena", "cloudtrail-lake"),
        metavar="ENGINE",
        help="print the query for ENGINE (athena or cloudtrail-lake) over --since/--until and exit",
    )
    scale.add_argument(
        "--table",
        metavar="NAME",
        help="--print-sql: the Athena table (default cloudtrail_logs_pp, the documented partition-"
        "projection table) or the CloudTrail Lake event data store ID (default $EDS_ID)",
    )
    scale.add_argument(
        "--from-query-results",
        action="store_true",
        help="PATH... are query results (Athena CSV or JSON, CloudTrail Lake JSON): classify their rows",
    )
    return parser


def _check_args(args: argparse.Namespace) -> str:
    """Which mode the arguments ask for ("files", "s3" or "lookup"); raises :class:`_Usage`."""
    if args.table and not args.print_sql:
        raise _Usage("--table is for --print-sql")
    if args.print_sql:
        if args.paths or args.lookup_events or args.from_query_results:
            raise _Usage("--print-sql reads no PATH: it prints a query for --since/--until")
        if not args.since:
            raise _Usage("--print-sql needs --since (an unbounded query scans the whole trail)")
        if args.accounts or args.regions:
            raise _Usage("--accounts and --regions are for s3:// and --lookup-events")
        return "sql"
    if args.from_query_results:
        if not args.paths:
            raise _Usage("--from-query-results needs FILE...")
        if args.lookup_events or args.since or args.until or args.accounts or args.regions:
            raise _Usage("--from-query-results reads only its FILEs (the window is in the query)")
        if any(p.lower().startswith("s3:") for p in args.paths):
            raise _Usage("--from-query-results reads local files; download the results first")
        return "results"
    remote = [p for p in args.paths if p.lower().startswith("s3:")]
    windowed = args.since or args.until or args.accounts or args.regions
    if args.lookup_events:
        if args.paths:
            raise _Usage("--lookup-events reads no PATH (it asks CloudTrail)")
        if not args.since:
            raise _Usage("--lookup-events needs --since, e.g. --since 90d (the history holds 90 days)")
        if args.accounts:
            raise _Usage("--accounts is for s3://: LookupEvents reads the account of the credentials")
        mode = "lookup"
    elif remote:
        if len(remote) != len(args.paths):
            raise _Usage("give either local paths or s3:// URLs, not both")
        mode = "s3"
    elif not args.paths:
        raise _Usage("give PATH..., s3://BUCKET/PREFIX/ or --lookup-events")
    elif windowed:
        raise _Usage("--since, --until, --accounts and --regions are for s3:// and --lookup-events")
    else:
        mode = "files"
    for account in _csv(args.accounts):
        if not account.isdigit() or len(account) != 12:
            raise _Usage(f"--accounts: {account!r} is not a 12-digit account ID")
    regions = _csv(args.regions)
    if regions:  # imported only when needed: it loads boto3, a tenth of a second of every local run
        from handlers.offline.detect_sources import is_region
    for region in regions:
        if not is_region(region):
            raise _Usage(f"--regions: {region!r} is not a region name (like eu-west-1)")
    if args.jobs < 1:
        raise _Usage("--jobs must be at least 1")
    return mode


def main(
    argv: Sequence[str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    *,
    now: datetime | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Run ``detect``; returns the exit status (0 read everything, 2 some input was unreadable).

    ``now``, ``clock`` and ``sleep`` are for tests (the window, and LookupEvents' pacing).
    """
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse prints its own message on sys.stderr
        return int(exc.code or 0)
    context = DetectorContext(
        trail_name=args.trail_name,
        trail_bucket=args.trail_bucket,
        trail_key_arn=args.trail_key,
        detector_key_arn=args.detector_key,
        approval_tag=args.approval_tag.strip() or DEFAULT_APPROVAL_TAG,
    )
    try:
        mode = _check_args(args)
        emit = _formatter(args.format)
        if mode == "sql":
            from handlers.offline.detect_sources import SourceError
            from handlers.offline.detect_sql import main_sql

            try:
                return main_sql(args, context, now=now, stdout=out)
            except (SourceError, ValueError) as exc:  # a bad window
                print(f"detect: error: {exc}", file=err)
                return 2
        if mode == "results":
            from handlers.offline.query_results import main_results

            return main_results(args.paths, context, emit=emit, stdout=out, stderr=err)
        if mode == "files":
            return _files_main(args, mode, context, emit, out, err, now or datetime.now(UTC), clock)
        from handlers.offline.detect_sources import SourceError

        try:
            if mode == "lookup":
                return _lookup_main(args, context, emit, out, err, now or datetime.now(UTC), clock, sleep)
            return _files_main(args, mode, context, emit, out, err, now or datetime.now(UTC), clock)
        except SourceError as exc:  # a bad URL or window, a missing bucket, no access: nothing to read
            print(f"detect: error: {exc}", file=err)
            return 2
    except _Usage as exc:
        err.write(parser.format_usage())
        print(f"detect: error: {exc}", file=err)
        return 2
    except BrokenPipeError:  # e.g. `detect ... | head`: the reader has gone, so stop quietly
        return 1


def _files_main(
    args: argparse.Namespace,
    mode: str,
    context: DetectorContext,
    emit: Callable[[str], str],
    out: TextIO,
    err: TextIO,
    now: datetime,
    clock: Callable[[], float],
) -> int:
    """Local files and directories, or trail buckets: the same per-file reading either way."""
    started = time.perf_counter()
    listings: list[detect_sources.TrailListing] = []
    inputs: Iterable[Source]
    if mode == "s3":
        from handlers.offline import detect_sources

        since, until = detect_sources.window(args.since, args.until, now)
        for url in args.paths:
            bucket, prefix = detect_sources.parse_s3_url(url)
            listing = detect_sources.TrailListing(
                bucket, prefix, since, until, _csv(args.accounts), _csv(args.regions)
            )
            listing.check()  # a missing bucket or no access: one line, exit 2, nothing read
            for message in listing.warnings:
                print(f"detect: warning: {message}", file=err)
            listings.append(listing)
        inputs = chain.from_iterable(listing.objects() for listing in listings)
        summary = Summary()
        errors: list[str] = []
        unit = "objects"
    else:
        walk = find_input_files(args.paths)
        for message in walk.errors:
            print(f"detect: error: {message}", file=err)
        inputs = walk.files
        summary = Summary(ignored_files=walk.ignored)
        errors = walk.errors
        unit = "files"
    progress = Progress(err, unit, clock)

    def known_total() -> int | None:
        if mode != "s3":
            return len(walk.files)
        return sum(x.listed for x in listings) if all(x.finished for x in listings) else None

    try:
        for report in scan_files(inputs, args.jobs, args.strict, context):
            for line in report.findings:
                out.write(emit(line) + "\n")
            if report.warnings or report.errors:
                progress.clear()
            for message in report.warnings:
                print(f"detect: warning: {message}", file=err)
            for message in report.errors:
                print(f"detect: error: {message}", file=err)
            summary.add(report)
            total = known_total()
            progress.update(summary.files, total, extra="" if total is not None else ", still listing")
        out.flush()
    finally:
        progress.clear()
    for listing in listings:
        for message in listing.errors:
            print(f"detect: error: {message}", file=err)
        errors = errors + listing.errors
    workers = max(1, min(args.jobs, summary.files))
    lines = summary.lines(time.perf_counter() - started, workers)
    if listings:
        calls = sum(x.list_calls for x in listings)
        lines.insert(
            0,
            f"detect: {', '.join(x.url for x in listings)}: {sum(len(x.trails) for x in listings)}"
            f" trail folder(s), {calls} ListObjectsV2 call(s), {summary.files} object(s) read",
        )
    for line in lines:
        print(line, file=err)
    return 2 if errors or summary.bad_files else 0


def _lookup_main(
    args: argparse.Namespace,
    context: DetectorContext,
    emit: Callable[[str], str],
    out: TextIO,
    err: TextIO,
    now: datetime,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> int:
    """``--lookup-events``: the watched names, one lookup each per region, through the same classifier."""
    from handlers.offline import detect_sources

    started = time.perf_counter()
    since, until = detect_sources.window(args.since, args.until, now)
    assert since is not None  # _check_args asks for --since
    regions = _csv(args.regions) or tuple(filter(None, [detect_sources.default_region()]))
    if not regions:
        raise _Usage("--lookup-events needs --regions (no default region is configured)")
    names, data_names = detect_sources.lookup_names(watched_event_names(context))
    if data_names:
        print(
            f"detect: note: {', '.join(data_names)} are data events, which LookupEvents does not hold; "
            "read a trail that logs data events (detect s3://...) to see them",
            file=err,
        )
    oldest = detect_sources.history_start(now)
    if since < oldest:
        print(
            f"detect: note: LookupEvents keeps 90 days: nothing before {utc_text(oldest)} can be found",
            file=err,
        )
    reader = detect_sources.LookupEventsReader(regions, names, since, until, clock=clock, sleep=sleep)
    report = FileReport("lookup-events")
    progress = Progress(err, "events", clock)
    try:
        for event in reader.read():
            _classify_all(report, iter((event.record,)), context)
            for line in report.findings:
                out.write(emit(line) + "\n")
            report.findings.clear()  # written: no need to hold them
            progress.update(reader.events, extra=f", lookups {reader.done}/{reader.total} done")
        out.flush()
    finally:
        progress.clear()
    for message in reader.errors:
        print(f"detect: error: {message}", file=err)
    elapsed = time.perf_counter() - started
    verdicts = ", ".join(f"{v} {report.verdicts[v]}" for v in VERDICTS)
    rate = reader.events / elapsed if elapsed > 0 else 0.0
    for line in (
        f"detect: LookupEvents {utc_text(since)} to {utc_text(until)}: "
        f"{len(names)} event name(s) x {len(regions)} region(s) ({', '.join(regions)}), "
        f"{reader.requests} request(s), {reader.throttled} throttled",
        f"detect: events {reader.events} (duplicates dropped {reader.duplicates}), records {report.records}, "
        f"watched {report.watched}",
        f"detect: findings {sum(report.verdicts.values())} ({verdicts})",
        f"detect: elapsed {elapsed:.2f} s, {rate:,.0f} events/s",
    ):
        print(line, file=err)
    return 2 if reader.errors else 0


if __name__ == "__main__":
    status = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        # Python would complain about the broken pipe again at exit; point stdout elsewhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(status)
