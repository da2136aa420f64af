"""``exposure-review``: who read or wrote a bucket during a window, from S3 server access logs on disk.

    python -m handlers.offline.review_cli --bucket B --account 123456789012 \\
        --from 2024-05-01T10:00:00Z --to 2024-05-01T10:14:00Z logs/ more.log.gz

Prints one JSON report (:meth:`handlers.review.exposure_review.ReviewAccumulator.report`) on stdout and
its one-line summary on stderr. Paths are files or directories (walked recursively), each file
plain or gzip. Exit status: 0 when every file was read; 2 on a usage error (bad timestamp,
account or path, named in the message) or when a file could not be read to its end (the report
is still printed, with ``complete: false``, and each such file is named on stderr).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from handlers.review.exposure_review import review_paths, summary_line

_ACCOUNT = re.compile(r"[0-9]{12}", re.ASCII)


def parse_timestamp(text: str) -> datetime:
    """An ISO 8601 timestamp with ``Z`` or an offset, as UTC; argparse's type for --from/--to."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 timestamp (expected e.g. 2024-05-01T10:00:00Z)"
        ) from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} has no time zone: add Z or an offset such as +02:00 (log times are UTC)"
        )
    try:
        return when.astimezone(UTC)
    except OverflowError:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range") from None


def parse_account(text: str) -> str:
    """A 12-digit AWS account id; argparse's type for --account."""
    if not _ACCOUNT.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not an AWS account id (expected 12 digits)")
    return text


def parse_bucket(text: str) -> str:
    """A bucket name as it appears in the logs (exact match): non-empty, no spaces."""
    if not text or any(character.isspace() for character in text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a bucket name")
    return text


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``exposure-review``."""
    parser = argparse.ArgumentParser(
        prog="exposure-review",
        description="Report who read or wrote a bucket during a time window, from S3 server access logs.",
    )
    parser.add_argument("--bucket", required=True, type=parse_bucket, help="the bucket reviewed")
    parser.add_argument("--account", required=True, type=parse_account, help="its account (12 digits)")
    parser.add_argument(
        "--from",
        dest="start",
        required=True,
        type=parse_timestamp,
        help="window start, e.g. 2024-05-01T10:00:00Z",
    )
    parser.add_argument(
        "--to", dest="end", required=True, type=parse_timestamp, help="window end (inclusive), ISO 8601"
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="log files or directories")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the review; see the module docstring for the output and exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.end < args.start:
        parser.error(f"--to {args.end.isoformat()} is before --from {args.start.isoformat()}")
    for path in args.paths:
        if not path.exists():
            parser.error(f"{path}: no such file or directory")
    report = review_paths(args.paths, args.bucket, args.account, args.start, args.end)
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    unreadable = [problem for source in report["sources"] for problem in source.get("unreadable", [])]
    for problem in unreadable:
        print(f"exposure-review: cannot read {problem}", file=sys.stderr)
    print(summary_line(report), file=sys.stderr)
    return 2 if unreadable else 0


if __name__ == "__main__":
    sys.exit(main())
