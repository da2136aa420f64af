"""``exposure-review`` (``python -m handlers.offline.review_cli``): output, usage errors and exit codes."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from test_access_logs import OWNER
from test_exposure_review import ACCOUNT, BUCKET, END, EXTERNAL_ARN, START, entry

ROOT = Path(__file__).resolve().parents[1]
WINDOW = ["--from", "2024-05-01T10:00:00Z", "--to", "2024-05-01T10:14:00Z"]
ARGS = ["--bucket", BUCKET, "--account", ACCOUNT, *WINDOW]


def logs(tmp_path: Path) -> Path:
    """A log directory: a plain file, a gzipped one in a subdirectory, a hidden one (skipped)."""
    root = tmp_path / "logs"
    (root / "2024-05-01").mkdir(parents=True)
    (root / "2024-05-01-10-20-11-6F1C2D3E4B5A6978").write_text(
        "\n".join(
            [
                entry(),
                entry(status="403", error="AccessDenied", sent="243", ip="198.51.100.2"),
                entry(requester=EXTERNAL_ARN, operation="REST.PUT.OBJECT", sent="-", ip="203.0.113.5"),
                entry(requester=OWNER, operation="REST.GET.BUCKET"),
                entry(bucket="acme-other"),
                "not a log line",
            ]
        )
        + "\n"
    )
    (root / "2024-05-01" / "2024-05-01-10-40-02-0A1B2C3D4E5F6071.gz").write_bytes(
        gzip.compress(
            "\n".join(
                [entry(START - timedelta(seconds=1)), entry(END), entry(END + timedelta(minutes=30))]
            ).encode()
        )
    )
    (root / ".DS_Store").write_bytes(b"\x00\x01binary")
    return root


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from handlers.offline.review_cli import main

    try:
        status = main(argv)
    except SystemExit as exit_:
        status = int(exit_.code or 0)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_directory_with_plain_and_gzip_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run([*ARGS, str(logs(tmp_path))], capsys)
    assert status == 0
    report: dict[str, Any] = json.loads(out)
    assert report["sources"] == [{"kind": "access-logs", "files": 2, "lines": 9}]
    assert report["requests"] == {"anonymous": 3, "external": 1, "internal": 1, "total": 5}
    assert (report["anonymous"]["succeeded"], report["anonymous"]["failed"]) == (2, 1)
    assert report["anonymous"]["distinctIps"] == 2
    assert report["external"]["byOperation"]["PUT"] == 1
    assert report["external"]["principals"] == [{"principal": EXTERNAL_ARN, "requests": 1}]
    assert (report["malformedLines"], report["outsideWindow"], report["otherBuckets"]) == (1, 2, 1)
    assert (report["complete"], report["completeTo"]) == (True, "2024-05-01T10:44:00Z")
    assert report["verdict"] == "written"
    assert err.strip().splitlines() == [
        "exposure review: 3 anonymous GETs from 2 IPs, 2 succeeded, 2.0 KB out; 1 external PUT from 1 IP; "
        "verdict written; 14-minute window (access logs complete to 10:44Z); 1 malformed record skipped"
    ]


def test_module_entry_point_prints_one_json_document(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "handlers.offline.review_cli", *ARGS, str(logs(tmp_path))],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)  # one document, nothing else on stdout
    assert report["schema"] == "s3-exposure-review/1"
    assert report["requests"]["total"] == 5


def test_offsets_are_converted_to_utc(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--bucket", BUCKET, "--account", ACCOUNT, "--from", "2024-05-01T12:00:00+02:00"]
    argv += ["--to", "2024-05-01T05:14:00-05:00", str(logs(tmp_path))]
    status, out, _ = run(argv, capsys)
    assert status == 0
    report = json.loads(out)
    assert report["window"] == {"from": "2024-05-01T10:00:00Z", "to": "2024-05-01T10:14:00Z", "minutes": 14}
    assert report["requests"]["total"] == 5


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--from": "yesterday"}, "'yesterday' is not an ISO 8601 timestamp"),
        ({"--from": "2024-05-01T10:00:00"}, "has no time zone"),
        ({"--to": "2024-13-01T00:00:00Z"}, "is not an ISO 8601 timestamp"),
        ({"--to": "2024-05-01T09:00:00Z"}, "is before --from"),
        ({"--account": "12345"}, "'12345' is not an AWS account id (expected 12 digits)"),
        ({"--account": "12345678901a"}, "is not an AWS account id"),
        ({"--account": "1234567890123"}, "is not an AWS account id"),
        ({"--bucket": "two words"}, "is not a bucket name"),
        ({"--bucket": None}, "the following arguments are required: --bucket"),
    ],
)
def test_usage_errors(
    change: dict[str, str | None], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    options = dict(zip(ARGS[::2], ARGS[1::2], strict=True))
    for key, value in change.items():
        if value is None:
            del options[key]
        else:
            options[key] = value
    argv = [part for option in options.items() for part in option]
    status, out, err = run([*argv, str(tmp_path)], capsys)
    assert status == 2
    assert out == ""
    assert message in err


def test_missing_path_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-such-logs"
    status, out, err = run([*ARGS, str(logs(tmp_path)), str(missing)], capsys)
    assert (status, out) == (2, "")
    assert f"{missing}: no such file or directory" in err


def test_damaged_gzip_still_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    whole = gzip.compress(("\n".join(entry() for _ in range(3000)) + "\n").encode())
    damaged = tmp_path / "damaged.gz"
    damaged.write_bytes(whole[:-40])
    status, out, err = run([*ARGS, str(damaged)], capsys)
    assert status == 2
    report = json.loads(out)
    assert report["complete"] is False
    assert report["sources"][0]["unreadableFiles"] == 1
    assert report["requests"]["anonymous"] == report["sources"][0]["lines"] > 0
    assert f"exposure-review: cannot read {damaged}: " in err


def test_empty_directory_is_no_evidence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    status, out, err = run([*ARGS, str(tmp_path / "empty")], capsys)
    assert status == 0
    report = json.loads(out)
    assert (report["verdict"], report["sources"]) == (
        "no-evidence",
        [{"kind": "access-logs", "files": 0, "lines": 0}],
    )
    assert "cannot tell whether data was read" in err
