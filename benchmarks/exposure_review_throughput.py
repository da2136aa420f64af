"""Time the exposure review against a naive parser and ``awk`` on the same server access log.

    python -m benchmarks.exposure_review_throughput        # 1M lines, plain text, cached in benchmarks/out/
    python -m benchmarks.exposure_review_throughput --gzip --repeat 3

The log is generated (deterministic for a seed): one log target holding three buckets, two hours
of requests around a 14-minute window, 30% anonymous, the rest the account's own IAM principals,
the owner's canonical id, AWS services and other accounts; user agents with spaces and escaped
quotes, URL-encoded UTF-8 keys, trailing fields of every vintage, and 0.5% malformed lines
(truncated, garbage, invalid UTF-8). S3 delivers these logs as plain text; ``--gzip`` compresses.

Each tool runs as a subprocess over the same file with its output going to a file:

* ``review``: ``python -m handlers.offline.review_cli``
  (:func:`handlers.review.exposure_review.review_paths`);
* ``naive csv``: ``csv.reader`` (space-delimited, quoted, escaped) + ``datetime.strptime`` per line,
  the same window/bucket/class counting with plain ``Counter``s (a line truncated inside a quote
  swallows the next lines, as csv does: its counts may be a little off);
* ``naive regex``: the same with a straightforward per-line regex instead of csv;
* ``awk``: counting anonymous lines (``$6 == "-"``), a floor: it parses nothing.

The table gives wall seconds (best of ``--repeat``), lines/s, CPU seconds (user + sys of the
process tree) and peak memory (PSS, as detect_throughput); then review/naive and review/awk
speed ratios. Goal: review >= 2x naive.
The review's counts are checked against what the generator wrote (the naive ones are shown).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from benchmarks.detect_throughput import ROOT, Run, best_of, print_table

FORMAT_VERSION = 1
ACCOUNT = "318473062105"
OTHER_ACCOUNT = "999988887777"
BUCKET = "acme-prod-web"
OTHER_BUCKETS = ("acme-prod-logs", "acme-data-lake")
OWNER = "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"
LOG_START = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
LOG_SECONDS = 2 * 3600
WINDOW_START = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
WINDOW_END = datetime(2024, 5, 1, 10, 14, tzinfo=UTC)
MALFORMED_SHARE = 0.005

INTERNAL = [
    f"arn:aws:iam::{ACCOUNT}:user/alice",
    f"arn:aws:sts::{ACCOUNT}:assumed-role/data-pipeline/botocore-session-1710231002",
    f"arn:aws:sts::{ACCOUNT}:assumed-role/AWSServiceRoleForConfig/AWSConfig-Describe",
    OWNER,
    "svc:logging.s3.amazonaws.com",
]
EXTERNAL = [
    f"arn:aws:iam::{OTHER_ACCOUNT}:user/partner-sync",
    f"arn:aws:sts::{OTHER_ACCOUNT}:assumed-role/reader/i-0abc",
    "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
]
USER_AGENTS = [
    "aws-cli/2.15.30 Python/3.11.8 Linux/6.1.0 exe/x86_64.debian.12 prompt/off command/s3.cp",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0",
    "curl/8.5.0",
    'python-requests/2.31.0 \\"scanner\\" (+https://example.invalid/bot)',
    "S3Console/0.4",
    "aws-sdk-java/1.12.600 Linux/5.10 OpenJDK_64-Bit_Server_VM/17.0.9+9-LTS java/17.0.9 vendor/Amazon.com",
]
OPERATIONS = [  # (operation, method, weight)
    ("REST.GET.OBJECT", "GET", 55),
    ("REST.HEAD.OBJECT", "HEAD", 12),
    ("REST.GET.BUCKET", "GET", 8),
    ("REST.PUT.OBJECT", "PUT", 10),
    ("WEBSITE.GET.OBJECT", "GET", 6),
    ("REST.DELETE.OBJECT", "DELETE", 2),
    ("REST.GET.ACL", "GET", 2),
    ("REST.GET.BUCKETPOLICY", "GET", 1),
    ("REST.POST.UPLOADS", "POST", 2),
    ("REST.GET.VERSIONING", "GET", 2),
]
KEYS = [
    "index.html",
    "assets/app.js",
    "reports/2024/Q1 results.pdf",
    "café/menü.txt",
    "exports/customers-2024-04.csv",
    "images/logo (1).png",
] + [f"data/part-{n:05d}.parquet" for n in range(200)]
TAILS = [  # trailing fields after the user agent, as logs of different vintages have them
    "",
    " -",
    " - {host_id} SigV4 ECDHE-RSA-AES128-GCM-SHA256 AuthHeader {bucket}.s3.eu-west-1.amazonaws.com TLSv1.2",
    " - {host_id} SigV4 TLS_AES_128_GCM_SHA256 AuthHeader {bucket}.s3.eu-west-1.amazonaws.com TLSv1.3 - -",
    " - {host_id} SigV4 TLS_AES_128_GCM_SHA256 QueryString s3.amazonaws.com TLSv1.3 - Yes eu-west-1",
]

NAIVE = r"""
import csv, json, re, sys
from collections import Counter
from datetime import datetime
bucket, account, start, end, path = sys.argv[1:6]
start, end = datetime.fromisoformat(start), datetime.fromisoformat(end)
classes, ops, sent, malformed = Counter(), Counter(), Counter(), 0
ips = {"anonymous": Counter(), "external": Counter()}
with open(path, "rb") as probe:
    gzipped = probe.read(2) == b"\x1f\x8b"
if gzipped:
    import gzip
    handle = gzip.open(path, "rt", encoding="utf-8", errors="replace", newline="")
else:
    handle = open(path, encoding="utf-8", errors="replace", newline="")
LINE = re.compile(r'(\S+) (\S+) (\[\S+) (\S+\]) (\S+) (\S+) (\S+) (\S+) (\S+) "(.*?)" (\S+) (\S+) (\S+) '
                  r'(\S+) (\S+) (\S+) "(.*?)" "(.*?)"')
if sys.argv[6] == "csv":
    rows = csv.reader(handle, delimiter=" ", quotechar='"', escapechar="\\", doublequote=False)
else:
    rows = (match.groups() if (match := LINE.match(line)) else () for line in handle)
with handle:
    for row in rows:
        try:
            if len(row) < 18 or not row[2].startswith("["):
                malformed += 1
                continue
            when = datetime.strptime(row[2][1:] + " " + row[3][:-1], "%d/%b/%Y:%H:%M:%S %z")
            if row[1] != bucket or not start <= when <= end:
                continue
            requester = row[5]
            if requester == "-":
                kind = "anonymous"
            elif requester == row[0] or f":{account}:" in requester or requester.startswith("svc:"):
                kind = "internal"
            else:
                kind = "external"
            classes[kind] += 1
            if kind != "internal":
                ips[kind][row[4]] += 1
                ops[kind + " " + row[7]] += 1
                sent[kind] += 0 if row[12] == "-" else int(row[12])
        except (ValueError, IndexError):
            malformed += 1
print(json.dumps({"classes": classes, "ops": ops, "bytes": sent, "malformed": malformed,
                  "top_ips": {k: v.most_common(10) for k, v in ips.items()}}))
"""


def _line(rng: random.Random, when: datetime, bucket: str, requester: str) -> str:
    operation, method, _ = rng.choices(OPERATIONS, weights=[w for *_, w in OPERATIONS])[0]
    takes_key = operation.endswith("OBJECT")
    key = quote(rng.choice(KEYS), safe="/") if takes_key else "-"
    status = rng.choices((200, 206, 304, 403, 404), weights=(70, 3, 4, 18, 5))[0]
    error = {403: "AccessDenied", 404: "NoSuchKey"}.get(status, "-")
    size = rng.randrange(200, 5_000_000)
    sent = "-" if method in ("HEAD", "PUT", "DELETE") else str(size if status < 300 else 243)
    uri = f"/{bucket}/{key}" if takes_key else f"/{bucket}?list-type=2&prefix=data%2F"
    ip = f"{rng.choice((198, 203, 192))}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    host_id = f"{rng.getrandbits(160):040x}"
    tail = rng.choice(TAILS).format(host_id=host_id, bucket=bucket)
    return (
        f"{OWNER} {bucket} [{when.strftime('%d/%b/%Y:%H:%M:%S')} +0000] {ip} {requester} "
        f'{rng.getrandbits(64):016X} {operation} {key} "{method} {uri} HTTP/1.1" {status} {error} '
        f"{sent} {size if takes_key else '-'} {rng.randrange(1, 900)} {rng.randrange(1, 50)} "
        f'"-" "{rng.choice(USER_AGENTS)}"{tail}'
    )


def _malformed(rng: random.Random, good: str) -> bytes:
    kind = rng.randrange(3)
    if kind == 0:
        return good[: rng.randrange(10, len(good) // 2)].encode()  # truncated
    if kind == 1:
        return bytes(rng.getrandbits(8) for _ in range(rng.randrange(20, 200))).replace(b"\n", b" ")
    return good.replace(" [", "\xff [", 1).encode("latin-1", "replace")  # invalid UTF-8 in the bucket field


def generate(path: str, lines: int, seed: int, gzipped: bool) -> dict[str, Any]:
    """Write the log (or reuse one written with the same parameters); returns its manifest."""
    manifest_path = path + ".manifest.json"
    wanted = {"format": FORMAT_VERSION, "lines": lines, "seed": seed, "gzip": gzipped}
    if os.path.exists(manifest_path) and os.path.exists(path):
        with open(manifest_path) as handle:
            manifest: dict[str, Any] = json.load(handle)
        if {k: manifest.get(k) for k in wanted} == wanted:
            return manifest
    rng = random.Random(seed)
    expected = {"anonymous_in_window": 0, "malformed": 0, "anonymous_lines": 0}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    size = 0
    with gzip.open(path, "wb", compresslevel=6) if gzipped else open(path, "wb") as out:
        batch: list[bytes] = []
        for _ in range(lines):
            when = LOG_START + timedelta(seconds=rng.randrange(LOG_SECONDS))
            bucket = BUCKET if rng.random() < 0.7 else rng.choice(OTHER_BUCKETS)
            share = rng.random()
            requester = "-" if share < 0.3 else rng.choice(EXTERNAL) if share < 0.36 else rng.choice(INTERNAL)
            text = _line(rng, when, bucket, requester)
            if rng.random() < MALFORMED_SHARE:
                expected["malformed"] += 1
                data = _malformed(rng, text)
            else:
                data = text.encode()
                if requester == "-":
                    expected["anonymous_lines"] += 1
                    if bucket == BUCKET and WINDOW_START <= when <= WINDOW_END:
                        expected["anonymous_in_window"] += 1
            size += len(data) + 1
            batch.append(data)
            if len(batch) >= 10_000:
                out.write(b"\n".join(batch) + b"\n")
                batch.clear()
        if batch:
            out.write(b"\n".join(batch) + b"\n")
    manifest = {**wanted, **expected, "decompressed_bytes": size}
    with open(manifest_path, "w") as handle:
        json.dump(manifest, handle)
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    """Generate (or reuse) the log, time the three tools, print the table; 1 when a count is wrong."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="log lines (default 1M)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--gzip", action="store_true", help="gzip the log (S3 itself writes plain text)")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "out"))
    parser.add_argument("--repeat", type=int, default=1, help="runs per tool; the fastest counts")
    args = parser.parse_args(argv)

    name = f"access-{args.lines}-{args.seed}.log" + (".gz" if args.gzip else "")
    path = os.path.join(args.out, name)
    print(f"generating or reusing {path} ...", file=sys.stderr)
    manifest = generate(path, args.lines, args.seed, args.gzip)
    start, end = WINDOW_START.isoformat(), WINDOW_END.isoformat()
    review_out = os.path.join(args.out, "review-report.json")
    naive_out = os.path.join(args.out, "review-naive-csv.json")
    naive_re_out = os.path.join(args.out, "review-naive-re.json")
    awk_out = os.path.join(args.out, "review-awk.txt")
    cat = f"zcat '{path}'" if args.gzip else f"cat '{path}'"
    review_cmd = [
        sys.executable,
        "-m",
        "handlers.offline.review_cli",
        "--bucket",
        BUCKET,
        "--account",
        ACCOUNT,
    ]
    tools: list[tuple[str, Run]] = [
        (
            "awk (anon lines)",
            Run(f"{cat} | LC_ALL=C awk '$6==\"-\"{{n++}} END{{print n}}'", awk_out, shell=True),
        ),
        (
            "naive csv+strptime",
            Run([sys.executable, "-c", NAIVE, BUCKET, ACCOUNT, start, end, path, "csv"], naive_out),
        ),
        (
            "naive re+strptime",
            Run([sys.executable, "-c", NAIVE, BUCKET, ACCOUNT, start, end, path, "re"], naive_re_out),
        ),
        ("review", Run([*review_cmd, "--from", start, "--to", end, path], review_out)),
    ]
    results = {label: best_of(args.repeat, run) for label, run in tools}

    with open(review_out) as handle:
        report = json.load(handle)
    with open(naive_out) as handle:
        naive = json.load(handle)
    with open(naive_re_out) as handle:
        naive_re = json.load(handle)
    with open(awk_out) as handle:
        awk_count = int(handle.read().strip() or 0)
    lines = manifest["lines"]
    print(
        f"\nlog: {lines:,} lines, {manifest['decompressed_bytes'] / 2**20:,.0f} MiB"
        f"{' (gzipped)' if args.gzip else ''}, {manifest['malformed']:,} malformed; "
        f"machine: {os.cpu_count()} cores"
    )
    print(
        f"anonymous in window: generated {manifest['anonymous_in_window']:,}, "
        f"review {report['requests']['anonymous']:,}, naive csv {naive['classes'].get('anonymous', 0):,}, "
        f"naive re {naive_re['classes'].get('anonymous', 0):,}; "
        f"review verdict {report['verdict']}, malformed {report['malformedLines']:,}; "
        f"awk anonymous lines {awk_count:,} (generated {manifest['anonymous_lines']:,})"
    )
    review = results["review"]
    print_table(results, "review", lines, "lines", 22)
    csv_ratio = results["naive csv+strptime"].wall / review.wall
    re_ratio = results["naive re+strptime"].wall / review.wall
    awk_ratio = results["awk (anon lines)"].wall / review.wall
    print(
        f"\nreview/naive csv {csv_ratio:.2f}x, review/naive re {re_ratio:.2f}x (goal >= 2.0); "
        f"review/awk {awk_ratio:.2f}x (awk parses nothing)"
    )
    wrong = []
    if report["requests"]["anonymous"] != manifest["anonymous_in_window"]:
        wrong.append("anonymous requests in the window")
    if report["malformedLines"] != manifest["malformed"]:
        wrong.append("malformed lines")
    if wrong:
        print(f"error: the review got wrong counts: {', '.join(wrong)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
