"""``detect`` where the logs are: a trail's bucket (``s3://``), CloudTrail's event history, ``--format``.

The bucket is moto's (in-process ``mock_aws``, and one test against a moto server on 127.0.0.1
for the worker processes), laid out as CloudTrail writes it. LookupEvents is not in moto, hence
``demo/lookup_events_fake.py`` (AWS's documented request and page shapes, ``NextToken`` paging,
throttling on demand) in front of a real boto3 CloudTrail client. No test sleeps: the pacer and
the backoff get a fake clock.
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.server import ThreadedMotoServer

from demo.lookup_events_fake import LookupEventsFake
from handlers.offline import detect_sources
from handlers.offline.detect_cli import Progress, main
from handlers.offline.detect_sources import LookupEventsReader, Pacer, S3Object, TrailListing

BUCKET = "org-trail-logs"
PREFIX = "trail/"
DAYS = ["2026/11/01", "2026/11/02", "2026/11/03", "2026/11/04", "2026/11/05"]
IN_WINDOW = DAYS[1:4]  # --since 2026-11-02 --until 2026-11-04T23:00
WINDOW = ("--since", "2026-11-02", "--until", "2026-11-04T23:00:00Z")
ORG = "o-a1b2c3d4e5"
# (folder under AWSLogs/, account): two accounts of their own trail, one of an organisation trail.
OWNERS = [
    ("111111111111", "111111111111"),
    ("222222222222", "222222222222"),
    (f"{ORG}/333333333333", "333333333333"),
]
REGIONS = ["eu-west-1", "us-east-1"]
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def noise(n: int, account: str = "111111111111", region: str = "eu-west-1") -> dict[str, Any]:
    return {
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "userName": "ops", "arn": f"arn:aws:iam::{account}:user/ops"},
        "eventTime": "2026-11-03T10:00:00Z",
        "eventSource": "ec2.amazonaws.com",
        "eventName": "DescribeInstances",
        "awsRegion": region,
        "sourceIPAddress": "203.0.113.7",
        "requestParameters": {"note": "s3:PutBucketPolicy"},
        "responseElements": None,
        "eventID": f"noise-{account}-{region}-{n}",
        "recipientAccountId": account,
    }


def public_policy(
    event_id: str, account: str = "111111111111", when: str = "2026-11-03T10:00:00Z"
) -> dict[str, Any]:
    statement = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*"}
    return {
        **noise(0, account),
        "eventTime": when,
        "eventSource": "s3.amazonaws.com",
        "eventName": "PutBucketPolicy",
        "eventID": event_id,
        "requestParameters": {
            "bucketName": f"exposed-{event_id}",
            "bucketPolicy": {"Version": "2012-10-17", "Statement": [statement]},
        },
    }


def _log_file(records: list[dict[str, Any]], compress: bool) -> bytes:
    body = json.dumps({"Records": records}, separators=(",", ":")).encode()
    return gzip.compress(body, mtime=0) if compress else body


def trail_objects() -> dict[str, bytes]:
    """Key -> body: every account, region and day; one public policy per file, named by its place."""
    objects: dict[str, bytes] = {}
    for folder, account in OWNERS:
        for region in REGIONS:
            for day in DAYS:
                stamp = day.replace("/", "")
                place = f"{account}-{region}-{stamp}"
                folder_key = f"{PREFIX}AWSLogs/{folder}/CloudTrail/{region}/{day}/"
                base = f"{folder_key}{account}_CloudTrail_{region}_{stamp}T1005Z"
                records = [noise(n, account, region) for n in range(3)] + [public_policy(place, account)]
                objects[f"{base}_a.json.gz"] = _log_file(records, compress=True)
                objects[f"{base}_b.json.gz"] = _log_file([noise(9, account, region)], compress=True)
    first = f"{PREFIX}AWSLogs/111111111111/CloudTrail/eu-west-1/2026/11/03/"
    # A plain (not gzipped) file, a damaged one, and what a trail also writes beside its logs.
    objects[f"{first}111111111111_CloudTrail_eu-west-1_20261103T1200Z_plain.json"] = _log_file(
        [public_policy("plain-json")], compress=False
    )
    objects[f"{first}111111111111_CloudTrail_eu-west-1_20261103T1300Z_cut.json.gz"] = _log_file(
        [public_policy("never-seen")], compress=True
    )[:-12]
    objects[f"{PREFIX}AWSLogs/111111111111/CloudTrail-Digest/eu-west-1/2026/11/03/digest.json.gz"] = b"x"
    objects[f"{PREFIX}AWSLogs/111111111111/CloudTrail/eu-west-1/2026/10/31/old.json.gz"] = _log_file(
        [public_policy("october")], compress=True
    )
    objects["unrelated/AWSLogs-not-a-trail.txt"] = b"not a log"
    return objects


def in_window(key: str) -> bool:
    return "/CloudTrail/" in key and any(f"/{day}/" in key for day in IN_WINDOW)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials and moto; no request leaves the process."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    detect_sources.reset_clients()
    with mock_aws():
        yield
    detect_sources.reset_clients()


class Calls:
    """Every AWS call detect's clients make: (operation, request parameters)."""

    def __init__(self) -> None:
        self.made: list[tuple[str, dict[str, Any]]] = []

    def hook(self, made: Any) -> None:
        # provide-client-params comes before a fake (before-call) answers: every call is seen.
        made.meta.events.register("provide-client-params.*.*", self._params)

    def _params(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.made.append((model.name, dict(params)))

    def of(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.made if name == operation]


@pytest.fixture
def calls(aws: None) -> Calls:
    seen = Calls()
    detect_sources.add_client_hook(seen.hook)
    return seen


def put_trail(objects: dict[str, bytes], region: str = "eu-west-1") -> None:
    s3 = boto3.client("s3", region_name=region)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": region})
    for key, body in objects.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)


def run(*args: str, **kwargs: Any) -> tuple[int, list[dict[str, Any]], str]:
    """main() in process, one worker unless ``--jobs`` says otherwise (in-process moto is this process's)."""
    out, err = io.StringIO(), io.StringIO()
    status = main(["--jobs", "1", *args], out, err, **kwargs)
    return status, [json.loads(line) for line in out.getvalue().splitlines()], err.getvalue()


def mirror(objects: dict[str, bytes], root: Path, keep: Any) -> Path:
    """The objects ``keep`` accepts, written under ``root`` with their keys as paths."""
    for key, body in objects.items():
        if keep(key):
            path = root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
    return root


# --- s3:// ----------------------------------------------------------------------------------------


def test_a_trail_bucket_gives_the_findings_of_the_same_files_read_locally(
    calls: Calls, tmp_path: Path
) -> None:
    objects = trail_objects()
    put_trail(objects)
    status, findings, err = run(f"s3://{BUCKET}/{PREFIX}", *WINDOW, "--jobs", "1", now=NOW)
    assert status == 2, err  # the damaged object
    wanted = sorted(k for k in objects if in_window(k))
    # Only the objects of the window's days were fetched, each once (the big ones only would be twice).
    fetched = [p["Key"] for p in calls.of("GetObject")]
    assert sorted(fetched) == wanted
    # Listing: delimiter listings to find accounts and regions, then each day folder, never the bucket.
    for params in calls.of("ListObjectsV2"):
        prefix = params["Prefix"]
        assert prefix.startswith(f"{PREFIX}AWSLogs/"), prefix
        if "Delimiter" not in params:
            assert any(prefix.endswith(f"/CloudTrail/{r}/{d}/") for r in REGIONS for d in IN_WINDOW), prefix
    day_listings = [p for p in calls.of("ListObjectsV2") if "Delimiter" not in p]
    assert len(day_listings) == len(OWNERS) * len(REGIONS) * len(IN_WINDOW)
    # Every account (own trails and the organisation's member), region and day in the window.
    ids = {f["eventID"] for f in findings}
    expected = {
        f"{account}-{region}-{day.replace('/', '')}"
        for _, account in OWNERS
        for region in REGIONS
        for day in IN_WINDOW
    }
    assert ids == expected | {"plain-json"}
    cut = "111111111111_CloudTrail_eu-west-1_20261103T1300Z_cut.json.gz"
    errors = [line for line in err.splitlines() if line.startswith("detect: error:")]
    assert (
        len(errors) == 1
        and f"s3://{BUCKET}/" in errors[0]
        and cut in errors[0]
        and "truncated gzip" in errors[0]
    )
    # The same files on disk give the same lines, in the same order, and the same error.
    local = mirror(objects, tmp_path / "copy", in_window)
    local_status, local_findings, local_err = run(str(local), "--jobs", "1")
    assert local_status == 2 and cut in local_err
    assert local_findings == findings


def test_given_accounts_and_regions_are_not_discovered(calls: Calls) -> None:
    put_trail(trail_objects())
    status, findings, err = run(
        f"s3://{BUCKET}/{PREFIX}",
        "--since",
        "2026-11-04",
        "--until",
        "2026-11-04",
        "--accounts",
        "333333333333,444444444444",
        "--regions",
        "us-east-1",
        "--jobs",
        "1",
        now=NOW,
    )
    assert status == 0, err
    assert [f["eventID"] for f in findings] == ["333333333333-us-east-1-20261104"]
    assert "account 444444444444 has no logs" in err
    region_listings = [p for p in calls.of("ListObjectsV2") if p["Prefix"].endswith("/CloudTrail/")]
    assert region_listings == []  # the regions were given
    assert {p["Key"].split("/")[2] for p in calls.of("GetObject")} == {ORG}


def test_without_since_the_day_folders_are_found_by_delimiter_listings(calls: Calls) -> None:
    put_trail(trail_objects())
    status, findings, err = run(
        f"s3://{BUCKET}/{PREFIX}",
        "--accounts",
        "111111111111",
        "--regions",
        "eu-west-1",
        "--until",
        "2026-11-01",
        now=NOW,
    )
    assert status == 0, err
    assert [f["eventID"] for f in findings] == ["october", "111111111111-eu-west-1-20261101"]
    trail = f"{PREFIX}AWSLogs/111111111111/CloudTrail/eu-west-1/"
    day_listings = [p["Prefix"] for p in calls.of("ListObjectsV2") if "Delimiter" not in p]
    assert day_listings == [f"{trail}2026/10/31/", f"{trail}2026/11/01/"]  # not 11/02 and later


def test_an_object_that_cannot_be_fetched_is_named_and_the_rest_is_read(calls: Calls) -> None:
    put_trail(trail_objects())
    denied = f"{PREFIX}AWSLogs/222222222222/CloudTrail/eu-west-1/2026/11/02/"

    def refuse(params: dict[str, Any], model: Any, **_: Any) -> None:
        if (
            model.name == "GetObject"
            and params["Key"].startswith(denied)
            and params["Key"].endswith("_a.json.gz")
        ):
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "GetObject")

    detect_sources.add_client_hook(
        lambda c: c.meta.events.register("provide-client-params.s3.GetObject", refuse)
    )
    status, findings, err = run(
        f"s3://{BUCKET}/{PREFIX}",
        "--since",
        "2026-11-02",
        "--until",
        "2026-11-02",
        "--accounts",
        "222222222222",
        now=NOW,
    )
    assert status == 2
    assert [f["eventID"] for f in findings] == ["222222222222-us-east-1-20261102"]
    error = next(line for line in err.splitlines() if line.startswith("detect: error:"))
    assert f"s3://{BUCKET}/{denied}" in error and "AccessDenied" in error
    assert "unreadable 1" in err


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3://no-such-bucket-here/", "s3://no-such-bucket-here/: no such bucket"),
        ("s3://Not_A_Bucket/x", "is not a valid S3 bucket name"),
        (f"s3://{BUCKET}/trail/AWSLogs/111111111111/", "give the trail's prefix"),
        (f"s3://{BUCKET}/elsewhere/", f"no CloudTrail logs under s3://{BUCKET}/elsewhere/AWSLogs/"),
    ],
)
def test_a_bucket_that_cannot_be_read_is_one_line_and_exit_2(calls: Calls, url: str, message: str) -> None:
    put_trail(trail_objects())
    status, findings, err = run(url, "--since", "3d", now=NOW)
    assert status == 2 and findings == []
    errors = [line for line in err.splitlines() if line.startswith("detect: error:")]
    assert len(errors) == 1 and message in errors[0], err
    assert calls.of("GetObject") == []


def test_access_denied_on_the_bucket_is_one_line(calls: Calls) -> None:
    put_trail(trail_objects())

    def deny(model: Any, **_: Any) -> None:
        raise ClientError({"Error": {"Code": "403", "Message": "Forbidden"}}, model.name)

    detect_sources.add_client_hook(
        lambda c: c.meta.events.register("provide-client-params.s3.HeadBucket", deny)
    )
    status, _, err = run(f"s3://{BUCKET}/", "--since", "1d", now=NOW)
    assert status == 2
    assert f"detect: error: s3://{BUCKET}/: access denied (reading a trail needs s3:ListBucket" in err


def test_s3_objects_are_read_in_worker_processes_against_a_moto_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",  # the forked workers inherit it
        }.items():
            monkeypatch.setenv(name, value)
        detect_sources.reset_clients()
        objects = trail_objects()
        put_trail(objects)
        status, findings, err = run(f"s3://{BUCKET}/{PREFIX}", *WINDOW, "--jobs", "3", now=NOW)
        assert status == 2 and "3 worker(s)" in err
        local = mirror(objects, tmp_path, in_window)
        assert run(str(local), "--jobs", "1")[1] == findings
    finally:
        server.stop()
        detect_sources.reset_clients()


def test_a_large_object_is_streamed_through_the_same_path(calls: Calls) -> None:
    records = [noise(n) for n in range(2000)] + [public_policy("tail")]
    put_trail(
        {"x/AWSLogs/111111111111/CloudTrail/eu-west-1/2026/11/03/big.json.gz": _log_file(records, True)}
    )
    from handlers.offline.detect_cli import scan_file

    source = S3Object(
        BUCKET, "x/AWSLogs/111111111111/CloudTrail/eu-west-1/2026/11/03/big.json.gz", None, None
    )
    small = scan_file(source, limit=10_000)  # below the object's size: streamed, in chunks
    whole = scan_file(source)
    assert small.findings == whole.findings and len(whole.findings) == 1
    assert (small.records, small.parsed, small.errors) == (2001, True, [])


def test_listing_follows_continuation_tokens(calls: Calls) -> None:
    folder = "AWSLogs/111111111111/CloudTrail/eu-west-1/2026/11/03/"
    put_trail({f"{folder}{n:04d}.json": json.dumps(noise(n)).encode() for n in range(1005)})
    day = datetime(2026, 11, 3, tzinfo=UTC)
    listing = TrailListing(BUCKET, "", day, day + timedelta(hours=23), regions=("eu-west-1",))
    listing.check()
    assert sum(1 for _ in listing.objects()) == 1005 and listing.finished
    pages = [p for p in calls.of("ListObjectsV2") if "Delimiter" not in p]
    assert len(pages) == 2 and "ContinuationToken" in pages[1]  # 1000 keys a page


# --- --lookup-events --------------------------------------------------------------------------------


class FakeClock:
    """time.monotonic and time.sleep for the pacer: sleeping moves the clock on, instantly."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def recent(days: float) -> str:
    return (NOW - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def history() -> list[dict[str, Any]]:
    """A month of history: public policies, a private ACL, noise, a data event, and paging fodder."""
    records = [public_policy(f"pub-{n}", when=recent(1 + n)) for n in range(3)]
    records.append(
        {
            **noise(0),
            "eventName": "PutBucketAcl",
            "eventSource": "s3.amazonaws.com",
            "eventID": "acl-private",
            "eventTime": recent(2),
            "requestParameters": {"bucketName": "quiet", "x-amz-acl": "private"},
        }
    )
    records.append(
        {
            **public_policy("data-event", when=recent(3)),
            "eventName": "PutObjectAcl",
            "requestParameters": {"bucketName": "b", "key": "k", "x-amz-acl": "public-read"},
        }
    )
    records += [{**noise(n), "eventTime": recent(1)} for n in range(20)]
    # 120 tagging calls without the approval tag: no finding, but three pages of one name.
    records += [
        {
            **noise(100 + n),
            "eventSource": "s3.amazonaws.com",
            "eventName": "PutBucketTagging",
            "eventID": f"tag-{n}",
            "eventTime": recent(5 + n / 100),
            "requestParameters": {
                "bucketName": "b",
                "Tagging": {"TagSet": {"Tag": {"Key": "team", "Value": "x"}}},
            },
        }
        for n in range(120)
    ]
    return records


@pytest.fixture
def cloudtrail(aws: None) -> Iterator[tuple[list[LookupEventsFake], Calls]]:
    """Each CloudTrail client made gets its own fake over :func:`history` (one per region)."""
    fakes: list[LookupEventsFake] = []
    seen = Calls()
    detect_sources.add_client_hook(seen.hook)

    def install(made: Any) -> None:
        if made.meta.service_model.service_name == "cloudtrail":
            fake = FAKE_FACTORY[0]()
            fake.install(made)
            fakes.append(fake)

    detect_sources.add_client_hook(install)
    yield fakes, seen


FAKE_FACTORY: list[Any] = [lambda: LookupEventsFake(history())]


def lookup(*extra: str, clock: FakeClock | None = None) -> tuple[int, list[dict[str, Any]], str, FakeClock]:
    clock = clock or FakeClock()
    status, findings, err = run(
        "--lookup-events", "--since", "30d", *extra, now=NOW, clock=clock, sleep=clock.sleep
    )
    return status, findings, err, clock


def test_lookup_events_asks_one_event_name_at_a_time_and_pages(cloudtrail: Any, tmp_path: Path) -> None:
    fakes, _ = cloudtrail
    status, findings, err, _ = lookup("--regions", "eu-west-1")
    assert status == 0, err
    assert sorted(f["eventID"] for f in findings) == ["pub-0", "pub-1", "pub-2"]
    (fake,) = fakes
    names = []
    for request in fake.requests:
        (attribute,) = request["LookupAttributes"]  # exactly one, the API's only filter
        assert attribute["AttributeKey"] == "EventName"
        names.append(attribute["AttributeValue"])
    wanted, data_events = detect_sources.lookup_names(detect_sources_watched())
    assert set(names) == set(wanted)
    assert not set(names) & {"PutObject", "PutObjectAcl", "CopyObject"}
    assert names.count("PutBucketTagging") == 3  # 120 events, 50 a page: NextToken followed
    assert err.count("data events, which LookupEvents does not hold") == 1
    assert "PutObjectAcl" in err
    assert set(data_events) == {"CopyObject", "CreateMultipartUpload", "PutObject", "PutObjectAcl"}
    # The same records in a file give the same findings (here minus the data event).
    path = tmp_path / "history.json"
    path.write_text(json.dumps({"Records": [r for r in history() if r["eventName"] != "PutObjectAcl"]}))
    local = run(str(path))[1]
    assert sorted(map(json.dumps, local)) == sorted(map(json.dumps, findings))


def detect_sources_watched() -> frozenset[str]:
    from handlers.detection.rules import watched_event_names

    return watched_event_names()


def test_lookup_events_are_paced_to_two_requests_a_second(cloudtrail: Any) -> None:
    clock = FakeClock()
    stamps: list[float] = []
    FAKE_FACTORY[0] = lambda: _Stamped(history(), clock, stamps)
    try:
        status, _, err, _ = lookup("--regions", "eu-west-1", clock=clock)
    finally:
        FAKE_FACTORY[0] = lambda: LookupEventsFake(history())
    assert status == 0, err
    assert len(stamps) >= 10
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert min(gaps) >= 0.5 - 1e-9
    assert clock.now - 1000.0 == pytest.approx(0.5 * (len(stamps) - 1))  # and no slower than that


class _Stamped(LookupEventsFake):
    def __init__(self, records: list[dict[str, Any]], clock: FakeClock, stamps: list[float]) -> None:
        super().__init__(records)
        self.clock, self.stamps = clock, stamps

    def lookup(self, request: dict[str, Any]) -> dict[str, Any]:
        self.stamps.append(self.clock())
        return super().lookup(request)


def test_events_seen_in_two_regions_are_deduplicated_by_event_id(cloudtrail: Any) -> None:
    fakes, _ = cloudtrail
    # Both regions' fakes hold the same records: the second region's copies are dropped by eventID.
    status, findings, err, _ = lookup("--regions", "eu-west-1,us-east-1")
    assert status == 0, err
    assert sorted(f["eventID"] for f in findings) == ["pub-0", "pub-1", "pub-2"]
    assert len(fakes) == 2 and fakes[0].requests and fakes[1].requests
    events = 3 + 1 + 120  # per region: the policies, the ACL, the tagging calls (noise is never asked for)
    assert f"duplicates dropped {events}" in err
    assert f"events {2 * events} " in err


def test_throttling_backs_off_retries_and_carries_on(cloudtrail: Any) -> None:
    FAKE_FACTORY[0] = lambda: _Flaky(history(), fail=2)
    try:
        status, findings, err, clock = lookup("--regions", "eu-west-1")
    finally:
        FAKE_FACTORY[0] = lambda: LookupEventsFake(history())
    assert status == 0, err
    assert len(findings) == 3
    assert [s for s in clock.slept if s >= 1] == [1.0, 2.0]  # exponential backoff, then the page came
    assert "2 throttled" in err


class _Flaky(LookupEventsFake):
    """Throttles the first ``fail`` requests, then answers."""

    def __init__(self, records: list[dict[str, Any]], fail: int) -> None:
        super().__init__(records)
        self.fail = fail

    def lookup(self, request: dict[str, Any]) -> dict[str, Any]:
        if self.fail:
            self.fail -= 1
            self.requests.append(request)
            raise ClientError(
                {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "LookupEvents"
            )
        return super().lookup(request)


def test_throttling_that_does_not_stop_names_the_gap_and_exits_2(cloudtrail: Any) -> None:
    FAKE_FACTORY[0] = lambda: LookupEventsFake(history(), throttle_after=1)
    try:
        status, _, err, clock = lookup("--regions", "eu-west-1")
    finally:
        FAKE_FACTORY[0] = lambda: LookupEventsFake(history())
    assert status == 2
    gaps = [line for line in err.splitlines() if "still throttled" in line]
    assert len(gaps) == len(detect_sources.lookup_names(detect_sources_watched())[0]) - 1
    assert all(
        line.startswith("detect: error: LookupEvents in eu-west-1 (") and " not read" in line for line in gaps
    )
    assert [s for s in clock.slept if s >= 1][:4] == [1.0, 2.0, 4.0, 8.0]


def test_access_denied_skips_the_region_once(cloudtrail: Any) -> None:
    FAKE_FACTORY[0] = lambda: LookupEventsFake(
        history(), throttle_after=0, error_code="AccessDeniedException"
    )
    try:
        status, findings, err, _ = lookup("--regions", "eu-west-1,eu-central-1")
    finally:
        FAKE_FACTORY[0] = lambda: LookupEventsFake(history())
    assert status == 2 and findings == []
    errors = [line for line in err.splitlines() if line.startswith("detect: error:")]
    assert len(errors) == 2 and all("AccessDeniedException" in line for line in errors)


def test_a_bad_cloudtrail_event_is_named_and_the_others_count(aws: None) -> None:
    reader = LookupEventsReader(("eu-west-1",), ("PutBucketPolicy",), NOW - timedelta(days=30), NOW)

    class Broken(LookupEventsFake):
        def lookup(self, request: dict[str, Any]) -> dict[str, Any]:
            page = super().lookup(request)
            page["Events"][0]["CloudTrailEvent"] = "{not json"
            return page

    fake = Broken([public_policy("a", when=recent(1)), public_policy("b", when=recent(2))])
    fake.install(detect_sources.client("cloudtrail", "eu-west-1"))
    clock = FakeClock()
    reader.clock, reader.sleep = clock, clock.sleep
    assert [e.record["eventID"] for e in reader.read()] == ["b"]
    assert len(reader.errors) == 1 and "bad CloudTrailEvent" in reader.errors[0]


def test_pacer_spaces_calls() -> None:
    clock = FakeClock()
    pacer = Pacer(2.0, clock, clock.sleep)
    for _ in range(5):
        pacer.wait()
    assert clock.slept == [0.5] * 4
    clock.now += 10  # an idle pacer does not sleep
    pacer.wait()
    assert clock.slept == [0.5] * 4


# --- arguments --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["s3:/bucket/x"], "not an s3:// URL"),
        (["s3://a/"], "not a valid S3 bucket name"),
        (["--lookup-events", "--regions", "eu-west-1"], "--lookup-events needs --since"),
        (["--lookup-events", "--since", "2099-01-01", "--regions", "eu-west-1"], "is in the future"),
        (["--lookup-events", "--since", "yesterday", "--regions", "eu-west-1"], "expected an ISO date"),
        (["--lookup-events", "--since", "5d", "--until", "9d", "--regions", "eu-west-1"], "is after --until"),
        (["--lookup-events", "--since", "5d", "--regions", "Europe"], "is not a region name"),
        (["--lookup-events", "--since", "5d", "--accounts", "111111111111"], "--accounts is for s3://"),
        (["--lookup-events", "--since", "5d", "x.json"], "reads no PATH"),
        (["s3://bucket-a/", "local.json"], "not both"),
        (["local.json", "--since", "1d"], "are for s3:// and --lookup-events"),
        (["s3://bucket-a/", "--accounts", "12"], "not a 12-digit account ID"),
        ([], "give PATH..., s3://BUCKET/PREFIX/ or --lookup-events"),
    ],
)
def test_argument_errors_exit_2_with_a_message(aws: None, args: list[str], message: str) -> None:
    status, findings, err = run(*args, now=NOW)
    assert status == 2 and findings == []
    assert "usage: detect" in err or "detect: error:" in err
    assert message in err, err


def test_an_unknown_format_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, _ = run("--format", "xml", "x.json")
    assert status == 2
    assert "invalid choice: 'xml'" in capsys.readouterr().err


def test_the_time_forms() -> None:
    assert detect_sources.parse_time("90d", NOW) == NOW - timedelta(days=90)
    assert detect_sources.parse_time("12h", NOW) == NOW - timedelta(hours=12)
    assert detect_sources.parse_time("2026-11-02", NOW) == datetime(2026, 11, 2, tzinfo=UTC)
    assert detect_sources.parse_time("2026-11-02T10:00:00+02:00", NOW) == datetime(2026, 11, 2, 8, tzinfo=UTC)
    assert detect_sources.window(None, "2099-01-01", NOW) == (None, NOW)  # the end is at most now


# --- --format ocsf and progress ------------------------------------------------------------------


def test_format_ocsf_gives_one_detection_finding_per_line(tmp_path: Path) -> None:
    ocsf = pytest.importorskip(
        "handlers.offline.ocsf", reason="handlers/offline/ocsf.py (another change) is not here yet"
    )
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"Records": [public_policy("p-1"), noise(1), public_policy("p-2")]}))
    status, plain, _ = run(str(path))
    status_ocsf, lines, err = run(str(path), "--format", "ocsf")
    assert status == status_ocsf == 0, err
    assert len(lines) == len(plain) == 2
    for line, finding in zip(lines, plain, strict=True):
        expected = ocsf.detection_finding(finding)
        assert line.keys() == expected.keys()
        assert line.get("class_uid") == expected.get("class_uid")


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_throttled_and_only_on_a_terminal() -> None:
    clock = FakeClock()
    tty = FakeTerminal()
    progress = Progress(tty, "objects", clock, interval=0.25)
    progress.update(0, 100)
    clock.now += 0.1
    progress.update(10, 100)  # too soon: not shown
    clock.now += 0.2
    progress.update(30, 100)
    clock.now += 0.1
    progress.update(40, None, extra=", still listing")  # too soon
    progress.update(50, None, extra=", still listing", force=True)
    shown = tty.getvalue().split("\r")[1:]
    assert len(shown) == 3
    assert "0/100 objects" in shown[0]
    assert "30/100 objects, 70 to go, 100.0/s" in shown[1] and "s left" in shown[1]
    assert shown[2].startswith("detect: 50 objects, 125.0/s, still listing")
    progress.clear()
    assert tty.getvalue().endswith("\r")
    pipe = io.StringIO()
    quiet = Progress(pipe, "objects", clock)
    quiet.update(1, 2, force=True)
    quiet.clear()
    assert pipe.getvalue() == ""


def test_detect_prints_progress_only_to_a_terminal(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"Records": [public_policy("p-1")]}))
    err = io.StringIO()
    assert main([str(path)], io.StringIO(), err) == 0
    assert "\r" not in err.getvalue()
    tty = FakeTerminal()
    assert main([str(path)], io.StringIO(), tty) == 0
    assert "\r" in tty.getvalue() and "1/1 files" in tty.getvalue()
