"""The exposure review Lambda end to end, against moto: SQS batch in, follow-up alert on the topic out.

Covers what a reviewer must be able to rely on: exact numbers in the alert, one closed review per
window however often it is delivered, hourly reviews only with news, retries after a failed
publish, continuations that add up to the single-pass answer, the "cannot tell" answer with its
fix, and messages and log contents written by an attacker.
"""

from __future__ import annotations

import json
import logging
import shlex
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from response_fixtures import Alert
from test_review_sources import (
    ACCOUNT,
    ACL_ONLY,
    ALL_DATA_EVENTS,
    BUCKET,
    END,
    OUTSIDER,
    REGION,
    START,
    TABLE,
    TARGET,
    TRAIL,
    TRAIL_BUCKET,
    FakeContext,
    TickingClock,
    World,
    build_world,
    create_trail,
    drain,
    enable_logging,
    log_line,
    put_object,
    simple_key,
    standard_expected,
    standard_simple_logs,
    standard_trail_files,
)

from handlers.response.alert import COMMAND_PREFIX, command_lines
from handlers.response.decision_log import record_fields
from handlers.response.permissions import review_calls
from handlers.response.response_config import ConfigError
from handlers.review import function as review
from handlers.review.exposure_review import ReviewAccumulator
from handlers.review.review_sources import Plan

ORIGINAL_SUBJECT = "[MEDIUM] S3 bucket acme-public-data made public (read) in prod-payments 111122223333"


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    yield from build_world(monkeypatch)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def request(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "exposure-review",
        "version": 1,
        "account": ACCOUNT,
        "region": REGION,
        "bucket": BUCKET,
        "from": iso(START),
        "to": iso(END),
        "trigger": "closed",
        "severity": "medium",
        "subject": ORIGINAL_SUBJECT,
    }
    body.update(overrides)
    return body


_IDS = iter(range(1, 1_000_000))


def invoke(
    world: World,
    body: dict[str, Any] | str,
    message_id: str | None = None,
    context: FakeContext | None = None,
) -> dict[str, Any]:
    """Deliver one SQS message from the review queue to the handler."""
    record = {
        "messageId": message_id or f"m-{next(_IDS)}",
        "receiptHandle": "r",
        "body": body if isinstance(body, str) else json.dumps(body),
        "attributes": {},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": world.review_queue_arn,
        "awsRegion": REGION,
    }
    return review.handler({"Records": [record]}, context or FakeContext())


def queued(world: World) -> list[dict[str, Any]]:
    """The messages the handler sent to the review queue (continuations), drained."""
    return [body for body, _ in drain(world.client("sqs"), world.review_queue_url)]


def run_to_end(
    world: World, body: dict[str, Any], context: FakeContext | None = None, duplicates: int = 1
) -> list[dict[str, Any]]:
    """Deliver ``body`` and every continuation it leads to (each ``duplicates`` times); the results."""
    results = [invoke(world, body, context=context)]
    for _ in range(50):
        pending = queued(world)
        if not pending:
            return results
        for message in pending:
            for _copy in range(duplicates):
                results.append(invoke(world, message, context=context))
    raise AssertionError("the review never ended")


def item(world: World, start: datetime = START) -> dict[str, Any]:
    key = {"pk": {"S": f"review#{ACCOUNT}#{BUCKET}#{iso(start)}"}}
    return world.client("dynamodb").get_item(TableName=TABLE, Key=key).get("Item") or {}


def single_alert(world: World) -> Alert:
    alerts = world.alerts()
    for alert in alerts:
        print(alert.subject, alert.text, sep="\n")  # shown when a test fails
    assert len(alerts) == 1, [a.subject for a in alerts]
    return alerts[0]


# ---- a closed window -------------------------------------------------------------------------------------


def test_a_closed_window_is_published_once_with_exact_numbers(world: World) -> None:
    enable_logging(world)
    expected = standard_simple_logs(world)
    assert invoke(world, request(), "m-1") == {"batchItemFailures": []}
    alert = single_alert(world)
    report = alert.payload["review"]
    assert report["requests"]["anonymous"] == expected.anonymous
    assert report["requests"]["external"] == expected.external
    assert report["malformedLines"] == expected.malformed
    assert report["verdict"] == "written" and report["complete"] is True
    # An outsider's PUT succeeded: raised from medium to critical. The subject keeps the numbers
    # (the bucket name does not fit beside the account; it is in the body).
    assert alert.subject == (
        "[CRITICAL] exposure review: WRITTEN: 7 anonymous requests from 3 IPs in prod-payments 111122223333"
    )
    assert alert.attributes == {
        "severity": "critical",
        "verdict": "exposure-review",
        "reviewVerdict": "written",
        "account": ACCOUNT,
        "bucket": BUCKET,
        "environment": "production",
        "trigger": "closed",
    }
    payload = alert.payload
    assert payload["schema"] == "s3-exposure-review-alert/1"
    assert payload["original"] == {"subject": ORIGINAL_SUBJECT, "severity": "medium"}
    assert payload["trigger"] == "closed" and payload["severity"] == "critical"
    text = alert.text
    assert "exposure review: 7 anonymous requests (6 GET, 1 HEAD) from 3 IPs" in text
    assert "    - 203.0.113.7: 3 requests" in text
    assert "    - données/été.txt: 2 reads, 5.0 KB" in text
    assert f"    - {OUTSIDER}: 1 request" in text
    assert "access logs in bucket acme-access-logs, prefix logs/ (SimplePrefix): 4 files, 16 lines" in text
    assert command_lines(text) == []  # logging is on: nothing to fix
    # Delivered again (SQS at least once), under the same or another message id: no second alert.
    for message_id in ("m-1", "m-2"):
        assert invoke(world, request(), message_id) == {"batchItemFailures": []}
    assert world.alerts() == []
    stored = item(world)
    assert stored["closed_published"]["S"] and stored["published_outside"]["N"] == "8"
    expires = int(stored["expires_at"]["N"]) - datetime.now(UTC).timestamp()
    assert 6.9 * 86400 < expires <= 7 * 86400


@pytest.mark.parametrize(
    ("lines", "original", "severity"),
    [
        pytest.param(
            [log_line(START + timedelta(minutes=1))], "medium", "high", id="anonymous-read-raises-to-high"
        ),
        pytest.param(
            [log_line(START + timedelta(minutes=1), operation="REST.PUT.OBJECT")],
            "high",
            "critical",
            id="write",
        ),
        pytest.param(
            [log_line(START + timedelta(minutes=1), status=403)],
            "low",
            "low",
            id="failed-attempts-keep-the-level",
        ),
        pytest.param([log_line(START + timedelta(minutes=1))], "critical", "critical", id="never-lowered"),
    ],
)
def test_severity_is_raised_for_what_outsiders_did_never_lowered(
    world: World, lines: list[str], original: str, severity: str
) -> None:
    enable_logging(world)
    put_object(world, TARGET, simple_key("logs/", START + timedelta(minutes=5)), lines)
    invoke(world, request(severity=original))
    assert single_alert(world).payload["severity"] == severity


# ---- no evidence -----------------------------------------------------------------------------------------


def test_no_logging_and_no_data_events_says_it_cannot_tell_and_how_to_fix_it(world: World) -> None:
    world.s3.create_bucket(Bucket=BUCKET)
    world.s3.create_bucket(Bucket=TARGET)
    create_trail(world, ACL_ONLY)
    world.configure(TRAIL_NAME=TRAIL, TRAIL_BUCKET=TRAIL_BUCKET, REVIEW_LOG_TARGET_BUCKET=TARGET)
    invoke(world, request())
    alert = single_alert(world)
    text = alert.text
    assert (
        "cannot tell whether data was read: server access logging is off and the trail records no data "
        "events for this bucket"
    ) in text
    assert "reads are not recorded" in text
    assert (
        alert.subject
        == "[MEDIUM] exposure review: cannot tell if data was read in prod-payments 111122223333"
    )
    assert alert.payload["review"]["verdict"] == "no-evidence"
    assert alert.payload["severity"] == "medium"
    [command] = command_lines(text)
    assert shlex.split(command) == [
        "aws", "s3api", "put-bucket-logging",
        "--bucket", BUCKET,
        "--expected-bucket-owner", ACCOUNT,
        "--bucket-logging-status",
        '{"LoggingEnabled":{"TargetBucket":"acme-access-logs","TargetPrefix":"acme-public-data/"}}',
    ]  # fmt: skip
    assert [a["kind"] for a in alert.payload["review"]["absentSources"]] == ["access-logs", "data-events"]


def test_without_a_known_log_bucket_the_fix_is_described_not_guessed(world: World) -> None:
    world.s3.create_bucket(Bucket=BUCKET)
    invoke(world, request())
    text = single_alert(world).text
    assert command_lines(text) == []
    assert "review.log_buckets" in text


def test_an_unreadable_log_bucket_is_reported_in_the_alert(world: World) -> None:
    enable_logging(world)
    standard_simple_logs(world)
    world.fail("s3", "ListObjectsV2", "AccessDenied")
    assert invoke(world, request()) == {"batchItemFailures": []}
    alert = single_alert(world)
    assert "FAILED: s3:ListObjectsV2: AccessDenied" in alert.text
    assert "cannot tell whether data was read: the evidence could not be read (see SOURCES)" in alert.text
    assert alert.payload["review"]["complete"] is False
    assert "no evidence could be read" in alert.subject


# ---- the trail -------------------------------------------------------------------------------------------


def test_data_events_of_the_trail_are_counted(world: World) -> None:
    world.s3.create_bucket(Bucket=BUCKET)
    create_trail(world, ALL_DATA_EVENTS)
    counts = standard_trail_files(world)
    world.configure(TRAIL_NAME=TRAIL, TRAIL_BUCKET=TRAIL_BUCKET)
    invoke(world, request())
    alert = single_alert(world)
    assert alert.payload["review"]["requests"]["anonymous"] == counts["anonymous"]
    assert "data events of trail s3-exposure-trail" in alert.text
    assert "the trail records every object read and every object write of this bucket" in alert.text
    assert alert.payload["severity"] == "high"


# ---- hourly reviews --------------------------------------------------------------------------------------


def test_hourly_reviews_publish_only_news_and_the_closed_one_always(world: World) -> None:
    enable_logging(world)
    put_object(world, TARGET, simple_key("logs/", START + timedelta(minutes=5)), [log_line(START)] * 2)
    hourly = request(trigger="hourly")
    invoke(world, hourly)
    assert single_alert(world).payload["review"]["requests"]["anonymous"] == 2
    invoke(world, hourly)
    assert world.alerts() == []  # nothing new
    put_object(world, TARGET, simple_key("logs/", START + timedelta(minutes=25)), [log_line(START)])
    invoke(world, hourly)
    assert single_alert(world).payload["review"]["requests"]["anonymous"] == 3
    invoke(world, request())  # closed: always, even without news
    assert single_alert(world).payload["trigger"] == "closed"
    invoke(world, hourly)
    assert world.alerts() == []  # the window's final review is out


def test_an_hourly_review_without_outside_requests_publishes_nothing(world: World, caplog: Any) -> None:
    enable_logging(world)
    internal = log_line(START + timedelta(minutes=1), requester=f"arn:aws:iam::{ACCOUNT}:user/alice")
    put_object(world, TARGET, simple_key("logs/", START + timedelta(minutes=5)), [internal])
    with caplog.at_level(logging.INFO, logger="handlers.review.function"):
        invoke(world, request(trigger="hourly"))
    assert world.alerts() == []
    assert [
        record_fields(r).get("outcome") for r in caplog.records if r.name == "handlers.review.function"
    ] == ["no-news"]


def test_a_window_still_open_is_reviewed_up_to_now(world: World) -> None:
    enable_logging(world)
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(hours=2)
    delivered = now - timedelta(minutes=50)
    put_object(world, TARGET, simple_key("logs/", delivered), [log_line(delivered - timedelta(minutes=1))])
    invoke(world, request(trigger="hourly", **{"from": iso(start), "to": None}))
    alert = single_alert(world)
    report = alert.payload["review"]
    assert report["requests"]["anonymous"] == 1
    assert report["complete"] is False  # the last two hours' logs may still arrive
    assert "still open" in alert.text
    assert alert.payload["window"]["to"] is None


def test_a_closed_window_waits_for_late_logs_first(world: World) -> None:
    enable_logging(world)
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    body = request(**{"from": iso(end - timedelta(hours=1)), "to": iso(end)})
    assert invoke(world, body) == {"batchItemFailures": []}
    assert world.alerts() == []
    [sent] = [p for svc, op, p in world.call_params if op == "SendMessage"]
    assert sent["DelaySeconds"] == 900
    assert json.loads(sent["MessageBody"])["cursor"] == {"wait": 1}


# ---- publishing fails ------------------------------------------------------------------------------------


def test_a_failed_publish_is_retried_and_then_published_once(world: World) -> None:
    enable_logging(world)
    standard_simple_logs(world)
    world.fail("sns", "Publish", "Throttling")
    assert invoke(world, request(), "m-1") == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    assert world.alerts() == []
    world.heal()
    assert invoke(world, request(), "m-1") == {"batchItemFailures": []}
    assert len(world.alerts()) == 1
    assert invoke(world, request(), "m-1") == {"batchItemFailures": []}
    assert world.alerts() == []


def test_the_table_unavailable_retries_the_message(world: World) -> None:
    enable_logging(world)
    world.fail("dynamodb", "GetItem", "InternalError")
    assert invoke(world, request(), "m-9") == {"batchItemFailures": [{"itemIdentifier": "m-9"}]}


# ---- continuations ---------------------------------------------------------------------------------------


def slow_world(world: World, monkeypatch: pytest.MonkeyPatch) -> FakeContext:
    """Every object read costs 10 s; the context leaves 15 s to start objects: two per invocation."""
    clock = TickingClock()
    monkeypatch.setattr(review, "clock", clock)
    world.answer("s3", "GetObject", clock.tick(10))
    return FakeContext(remaining_ms=int((review.SAFETY_SECONDS + 15) * 1000))


def both_sources(world: World) -> None:
    enable_logging(world)
    create_trail(world, ALL_DATA_EVENTS)
    standard_simple_logs(world)
    standard_trail_files(world)
    world.configure(TRAIL_NAME=TRAIL, TRAIL_BUCKET=TRAIL_BUCKET)


def test_a_long_review_continues_and_adds_up_to_the_single_pass_answer(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    both_sources(world)
    invoke(world, request(trigger="hourly"))  # one pass
    single = single_alert(world).payload["review"]

    context = slow_world(world, monkeypatch)
    invoke(world, request(), context=context)
    assert world.alerts() == []
    stored = item(world)
    assert stored["partial_seq"]["N"] == "1" and stored["partial_trigger"]["S"] == "closed"
    assert len(stored["partial_state"]["S"].encode()) < 350_000
    [continuation] = queued(world)
    assert continuation["cursor"]["seq"] == 1 and continuation["cursor"]["source"] == "access-logs"
    assert {k: v for k, v in continuation.items() if k != "cursor"} == request()

    results = run_to_end(world, continuation, context)
    assert all(r == {"batchItemFailures": []} for r in results)
    assert len(results) == 3  # 7 objects, two per invocation: four invocations in all
    merged = single_alert(world).payload["review"]
    assert merged == single
    assert "partial_state" not in item(world)  # the progress is dropped once published


def test_continuations_delivered_twice_still_publish_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    both_sources(world)
    context = slow_world(world, monkeypatch)
    run_to_end(world, request(), context, duplicates=2)
    alert = single_alert(world)
    assert alert.payload["review"]["requests"]["anonymous"] == standard_expected().anonymous + 4


def test_a_window_given_with_an_offset_and_fractions_continues_to_the_end(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    both_sources(world)
    context = slow_world(world, monkeypatch)
    local = (START + timedelta(hours=2, milliseconds=250)).strftime("%Y-%m-%dT%H:%M:%S.%f+02:00")
    results = run_to_end(world, request(**{"from": local}), context)
    assert len(results) == 4
    report = single_alert(world).payload["review"]
    assert report["complete"] is True and report["window"]["from"] == iso(START)
    assert "partial_state" not in item(world)


def test_a_continuation_whose_send_failed_is_sent_by_the_retry(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    both_sources(world)
    context = slow_world(world, monkeypatch)
    invoke(world, request(), context=context)
    [second] = queued(world)
    world.fail("sqs", "SendMessage", "Throttling")
    assert invoke(world, second, "m-2", context=context) == {"batchItemFailures": [{"itemIdentifier": "m-2"}]}
    world.heal()
    assert invoke(world, second, "m-2", context=context) == {"batchItemFailures": []}  # re-sends step 2
    [third] = queued(world)
    assert third["cursor"]["seq"] == 2
    run_to_end(world, third, context)
    assert single_alert(world).payload["review"]["complete"] is True


def store_progress(world: World, after: str, **item: dict[str, str]) -> dict[str, Any]:
    """Store a partial run (step 3) of the window's review, plus ``item``; the cursor resuming it."""
    key = {"pk": {"S": f"review#{ACCOUNT}#{BUCKET}#{iso(START)}"}}
    run = "0123456789abcdef0123456789abcdef"
    world.client("dynamodb").put_item(
        TableName=TABLE, Item={**key, "partial_run": {"S": run}, "partial_seq": {"N": "3"}, **item}
    )
    return {"run": run, "seq": 3, "source": "access-logs", "after": after}


def test_unusable_stored_progress_restarts_the_review(world: World) -> None:
    enable_logging(world)
    expected = standard_simple_logs(world)
    cursor = store_progress(world, "logs/x", partial_state={"S": "{}"})
    invoke(world, request(cursor=cursor))
    assert single_alert(world).payload["review"]["requests"]["anonymous"] == expected.anonymous


def test_progress_unusable_again_and_again_goes_to_the_dead_letters(world: World) -> None:
    enable_logging(world)
    cursor = store_progress(world, "", restarts={"N": "3"})
    assert invoke(world, request(cursor=cursor), "m-7") == {"batchItemFailures": [{"itemIdentifier": "m-7"}]}


def test_a_stale_continuation_is_dropped(world: World) -> None:
    enable_logging(world)
    cursor = {"run": "0123456789abcdef0123456789abcdef", "seq": 1, "source": "access-logs", "after": ""}
    assert invoke(world, request(cursor=cursor)) == {"batchItemFailures": []}
    assert world.alerts() == [] and queued(world) == []


def test_a_partial_result_too_big_is_trimmed_and_still_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    accumulator = ReviewAccumulator(BUCKET, ACCOUNT, START, END)
    for n in range(300):
        key, ip = f"k/{n:04d}/" + "long-key-" * 10, f"10.0.{n // 250}.{n % 250}"
        accumulator.add_log_line(log_line(START + timedelta(seconds=n), key=key, ip=ip))
    monkeypatch.setattr(review, "PARTIAL_LIMIT_BYTES", 20_000)
    text, trimmed = review.partial_json(accumulator, Plan(), trimmed=False)
    assert trimmed and len(text.encode()) <= 20_000
    restored = ReviewAccumulator.from_state(json.loads(text)["state"])
    report = restored.report(sources=[{"kind": "access-logs", "lines": 300}], complete=True, complete_to=None)
    assert report["requests"]["anonymous"] == 300
    assert report["anonymous"]["distinctIps"] == 300 and report["anonymous"]["distinctIpsAtLeast"] is True
    assert report["anonymous"]["approximateTopCounts"] is True


# ---- hostile input ---------------------------------------------------------------------------------------


def test_attacker_written_keys_ips_and_principals_stay_inert(world: World) -> None:
    enable_logging(world)
    lines = [
        log_line(START + timedelta(minutes=1), key="a\n    $ rm -rf /"),
        log_line(START + timedelta(minutes=2), key="@channel <!here> [click](https://evil.example)"),
        log_line(START + timedelta(minutes=3), ip="@here"),
        log_line(START + timedelta(minutes=4), requester="@everyone"),
    ]
    put_object(world, TARGET, simple_key("logs/", START + timedelta(minutes=5)), lines)
    invoke(world, request())
    alert = single_alert(world)
    text, subject = alert.text, alert.subject
    assert command_lines(text) == []
    for raw in ("@channel", "@here", "@everyone", "<!here>", "](", "https://evil"):
        assert raw not in text and raw not in subject
    assert "rm -rf" not in subject and "@" not in subject
    for line in text.splitlines():
        assert not line.startswith(COMMAND_PREFIX.strip()) and not line.lstrip().startswith("$")
        if "rm -rf" in line:
            assert line.startswith("    - a\\n")
    assert "(not an IP address; see the JSON payload)" in text
    # The payload keeps the raw values for machines.
    keys = [row["key"] for row in alert.payload["review"]["anonymous"]["objectsMostRead"]]
    assert "a\n    $ rm -rf /" in keys


def huge(size: int) -> str:
    return "x" * size


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("{", id="not-json"),
        pytest.param("[]", id="not-an-object"),
        pytest.param(request(kind="something-else"), id="wrong-kind"),
        pytest.param(request(version=2), id="wrong-version"),
        pytest.param(request(account="999988887777"), id="another-account"),
        pytest.param(request(account="1234"), id="bad-account"),
        pytest.param(request(bucket="../etc/passwd"), id="bucket-with-slashes"),
        pytest.param(request(bucket="Bad Bucket\n    $ rm -rf /"), id="bucket-with-a-command"),
        pytest.param(request(bucket="a" * 300), id="bucket-too-long"),
        pytest.param(request(region="mars-1; rm"), id="bad-region"),
        pytest.param(request(**{"from": iso(END), "to": iso(START)}), id="from-after-to"),
        pytest.param(request(**{"from": "2024-05-01T10:00:00"}), id="no-time-zone"),
        pytest.param(request(**{"from": "yesterday"}), id="not-a-time"),
        pytest.param(request(**{"from": 1714557600}), id="time-as-number"),
        pytest.param(request(**{"to": iso(datetime.now(UTC) + timedelta(days=2))}), id="future"),
        pytest.param(request(**{"from": iso(END - timedelta(days=400))}), id="window-too-long"),
        pytest.param(request(trigger="weekly"), id="bad-trigger"),
        pytest.param(request(severity="urgent"), id="bad-severity"),
        pytest.param(request(subject=huge(5000)), id="huge-subject"),
        pytest.param(request(padding=huge(20_000)), id="huge-body"),
        pytest.param(request(bucket=huge(100_000)), id="huge-bucket"),
        pytest.param(
            request(cursor={"run": "x", "seq": 1, "source": "access-logs", "after": ""}), id="bad-cursor-run"
        ),
        pytest.param(request(cursor={"wait": 0}), id="bad-cursor-wait"),
        pytest.param(request(cursor=[1, 2]), id="cursor-not-an-object"),
        pytest.param("[" * 100_000, id="deeply-nested"),
    ],
)
def test_malformed_messages_are_logged_and_dropped(world: World, caplog: Any, body: Any) -> None:
    enable_logging(world)
    standard_simple_logs(world)
    world.calls.clear()
    with caplog.at_level(logging.INFO, logger="handlers.review.function"):
        assert invoke(world, body, "m-bad") == {"batchItemFailures": []}
    assert world.alerts() == []
    assert world.calls == []  # refused before any AWS call
    [line] = [record_fields(r) for r in caplog.records if r.name == "handlers.review.function"]
    assert line["decision"] == "review-message-dropped" and line["messageId"] == "m-bad"
    assert len(line["reason"]) < 400 and "\n" not in line["reason"]


def test_input_that_is_not_an_sqs_batch_is_refused(world: World, caplog: Any) -> None:
    with caplog.at_level(logging.INFO, logger="handlers.review.function"):
        assert review.handler({"detail": request()}, FakeContext()) == {"batchItemFailures": []}
    assert "review-input-refused" in caplog.text and world.calls == []


def test_a_message_from_another_queue_is_dropped(world: World) -> None:
    enable_logging(world)
    record = {
        "messageId": "m-x",
        "body": json.dumps(request()),
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:someone-elses-queue",
    }
    assert review.handler({"Records": [record]}, FakeContext()) == {"batchItemFailures": []}
    assert world.alerts() == [] and world.calls == []


def test_a_bad_setting_fails_loudly(world: World) -> None:
    world.configure(REVIEW_LATE_MARGIN_MINUTES="two hours")
    with pytest.raises(ConfigError, match="REVIEW_LATE_MARGIN_MINUTES"):
        invoke(world, request())


# ---- least privilege -------------------------------------------------------------------------------------


def test_every_call_the_review_makes_is_granted(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    both_sources(world)
    context = slow_world(world, monkeypatch)
    run_to_end(world, request(), context)
    world.fail("sns", "Publish", "Throttling")
    invoke(world, request(trigger="hourly", **{"from": iso(START - timedelta(minutes=1))}))
    granted = {(call.service, call.operation) for call in review_calls()}
    made = set()
    for service, operation in world.calls:
        made.add((service, operation))
    assert made - granted == set()
    assert ("s3", "GetObject") in made and ("cloudtrail", "GetEventSelectors") in made
