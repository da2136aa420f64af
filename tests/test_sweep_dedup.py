"""Alert once per exposure: the sweep's ledger, the real-time hook and the daily digest, in moto.

Small estates, delivered through moto's topic to the SQS subscription (``world.alerts()``), so
these tests also prove the messages go out for real.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from response_fixtures import ACCOUNT, TABLE, World, build_world, make_record, public_policy
from sweep_estate import build_estate, configure_sweep, ledger_items, paged_listing

from handlers.response.exposure_ledger import record_published
from handlers.response.permissions import calls_for, sweep_calls_for
from handlers.sweep import function as sweep

TODAY = datetime.now(UTC)
BEFORE_DIGEST = TODAY.replace(hour=3, minute=0, second=0, microsecond=0)
AFTER_DIGEST = TODAY.replace(hour=9, minute=0, second=0, microsecond=0)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    yield from build_world(monkeypatch)


def start(world: World, counts: dict[str, int], **env: str):
    estate = build_estate(world, counts)
    world.answer("s3", "ListBuckets", paged_listing(world, estate))
    configure_sweep(world, **env)
    return estate


def run(world: World, now: datetime = BEFORE_DIGEST) -> sweep.SweepSummary:
    sweep.reset_settings()
    return sweep.run_scheduled(sweep.current_settings(), now=now)


def alerted(world: World) -> dict[str, dict]:
    return {a.payload["finding"]["bucket"]: a.payload for a in world.alerts() if "finding" in a.payload}


def assert_granted(world: World, mode: str = "off") -> None:
    granted = {(c.service, c.operation) for c in sweep_calls_for(mode)}
    assert set(world.calls) <= granted, sorted(set(world.calls) - granted)


def test_second_run_does_not_re_alert(world: World) -> None:
    estate = start(world, {"policy": 3, "acl": 2, "held": 2, "private": 3})
    first = run(world)
    assert set(alerted(world)) == estate.of("policy", "acl", "held")
    second = run(world)
    assert world.alerts() == []
    assert second["alerted"] == [] and second["counts"]["suppressed"] == 7
    assert second["counts"]["BucketsPublic"] == first["counts"]["BucketsPublic"] == 5
    assert_granted(world)


def test_changed_exposure_re_alerts_and_improvement_stays_quiet(world: World) -> None:
    estate = start(world, {"policy": 3, "held": 2})
    run(world)
    world.alerts()
    s3 = world.client("s3")
    relapsed, widened, improved = "held-00000", "policy-00000", "policy-00001"
    s3.delete_public_access_block(Bucket=relapsed)  # the guard goes: held back -> public now
    # A second path, with write. (moto's canned "public-read-write" drops the WRITE grant: explicit.)
    owner = s3.get_bucket_acl(Bucket=widened)["Owner"]
    all_users = {"Type": "Group", "URI": "http://acs.amazonaws.com/groups/global/AllUsers"}
    s3.put_bucket_acl(
        Bucket=widened,
        AccessControlPolicy={"Owner": owner, "Grants": [{"Grantee": all_users, "Permission": "WRITE"}]},
    )
    s3.put_public_access_block(  # someone half-fixes it: the policy is held back now
        Bucket=improved,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": False,
            "IgnorePublicAcls": False,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )

    run(world)

    again = alerted(world)
    assert set(again) == {relapsed, widened}
    assert all(p["sweep"]["reason"] == "changed" for p in again.values())
    assert again[relapsed]["sweep"]["previousSignature"] == ["policy/read/held"]
    assert again[relapsed]["exposure"]["status"] == "public-now"
    assert "bucket-acl/write/public" in again[widened]["sweep"]["signature"]
    assert again[widened]["severity"] == "critical"  # public write in production
    items = ledger_items(world)
    assert json.loads(items[improved]["signature"]) == ["policy/read/held"]  # recorded quietly
    assert len(estate.of("policy", "held")) == len(items)

    # The improved bucket relapsing is news again.
    s3.delete_public_access_block(Bucket=improved)
    run(world)
    assert set(alerted(world)) == {improved}
    assert_granted(world)


def test_closed_bucket_is_forgotten_so_reopening_alerts_again(world: World) -> None:
    start(world, {"policy": 2})
    run(world)
    world.alerts()
    s3 = world.client("s3")
    s3.delete_bucket_policy(Bucket="policy-00000")
    run(world)
    assert world.alerts() == []
    assert set(ledger_items(world)) == {"policy-00001"}
    s3.put_bucket_policy(Bucket="policy-00000", Policy=json.dumps(public_policy("policy-00000")))
    run(world)
    (payload,) = alerted(world).values()
    assert payload["finding"]["bucket"] == "policy-00000" and payload["sweep"]["reason"] == "new"


def test_deleted_bucket_leaves_the_ledger(world: World) -> None:
    start(world, {"policy": 2})
    run(world)
    s3 = world.client("s3")
    s3.delete_bucket_policy(Bucket="policy-00001")
    s3.delete_bucket(Bucket="policy-00001")
    run(world)
    assert set(ledger_items(world)) == {"policy-00000"}


def test_real_time_alert_keeps_the_next_sweep_quiet(world: World) -> None:
    """The response path reports first and records its signature (the hook response.py calls)."""
    start(world, {"private": 2})
    bucket = "fresh-exposure"
    world.client("s3").create_bucket(Bucket=bucket)
    record = make_record("PutBucketPolicy", bucket, {"bucketPolicy": public_policy(bucket)})
    world.replay(record)
    world.invoke(record)
    (realtime,) = world.alerts()
    world.calls.clear()
    failures = record_published(
        TABLE, ACCOUNT, [{"subject": realtime.subject, "payload": realtime.payload}], TODAY
    )
    assert failures == []
    # The hook needs nothing the response function's role lacks.
    assert set(world.calls) == {("dynamodb", "UpdateItem")}
    assert set(world.calls) <= {(c.service, c.operation) for c in calls_for("off")}
    assert ledger_items(world)[bucket]["source"] == "realtime"

    summary = run(world)

    assert world.alerts() == []
    assert summary["counts"]["suppressed"] == 1 and summary["counts"]["BucketsPublic"] == 1


def test_real_time_hook_skips_approved_and_closed(world: World) -> None:
    world.configure(EXCEPTION_BUCKETS='["site-*"]')
    s3 = world.client("s3")
    for bucket in ("site-www", "plain"):
        s3.create_bucket(Bucket=bucket)
        record = make_record("PutBucketPolicy", bucket, {"bucketPolicy": public_policy(bucket)})
        world.replay(record)
        if bucket == "plain":
            s3.delete_bucket_policy(Bucket=bucket)  # closed again before the function looks
        world.invoke(record)
    alerts = [{"subject": a.subject, "payload": a.payload} for a in world.alerts()]
    assert len(alerts) == 2
    assert record_published(TABLE, ACCOUNT, alerts, TODAY) == []
    assert ledger_items(world) == {}


def test_digest_once_a_day_lists_known_open_exposures(world: World) -> None:
    estate = start(world, {"policy": 2, "held": 1, "private": 2})
    run(world, BEFORE_DIGEST)
    assert len(world.alerts()) == 3  # the exposures themselves; no digest before the hour

    summary = run(world, AFTER_DIGEST)

    assert summary["digest"] == "sent"
    (digest,) = world.alerts()
    assert digest.subject.startswith("[DIGEST] 2 public, 1 held back only by BPA")
    assert digest.attributes["severity"] == "info"
    assert digest.payload["schema"] == "s3-public-exposure-digest/1"
    assert {e["bucket"] for e in digest.payload["exposures"]} == estate.of("policy", "held")
    assert "policy-00000" in digest.text
    assert run(world, AFTER_DIGEST.replace(hour=10))["digest"] == "already-sent"
    assert world.alerts() == []


def test_digest_leaves_out_what_this_run_just_alerted(world: World) -> None:
    start(world, {"policy": 1})
    summary = run(world, AFTER_DIGEST)
    assert summary["digest"] == "empty"
    assert [a.subject.startswith("[DIGEST]") for a in world.alerts()] == [False]


def test_publish_failure_raises_and_the_next_run_alerts_again(world: World, capsys) -> None:
    start(world, {"policy": 2})
    world.fail("sns", "Publish", "Throttling")
    capsys.readouterr()
    with pytest.raises(sweep.AlertNotPublished):
        run(world)
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert emf[-1]["SweepCompleted"] == 0 and emf[-1]["BucketErrors"] == 2
    assert ledger_items(world) == {}  # claims undone
    world.heal()
    run(world)
    assert set(alerted(world)) == {"policy-00000", "policy-00001"}


def test_undecidable_bucket_is_an_error_not_an_alert_or_a_closure(world: World) -> None:
    start(world, {"private": 2}, REMEDIATION_MODE="enforce")
    world.fail("s3", "GetBucketAcl", "AccessDenied")
    summary = run(world)
    assert world.alerts() == []
    assert summary["counts"]["BucketErrors"] == 2 and summary["counts"]["error"] == 2
    assert "PutPublicAccessBlock" not in world.handler_calls("s3")
    assert summary["completed"]  # the run itself finished; the error metric has its own alarm


@pytest.mark.parametrize("stored", ["5", "null", '"policy/read/public"', '[1, "policy/read/public"]', "{"])
def test_unreadable_ledger_signature_neither_crashes_nor_silences_the_bucket(
    world: World, stored: str
) -> None:
    """An exposure item whose signature is not a JSON list of strings (hand-edited, an older
    writer) used to stop every scheduled run (TypeError on ``tuple(5)``, AttributeError on a
    number token); and the conditional write named ``[]``, not what was stored, so the bucket was
    reported as recorded meanwhile, never alerted again. Now it reads as no signature: news."""
    start(world, {"policy": 2})
    run(world)
    world.alerts()
    world.client("dynamodb").update_item(
        TableName=TABLE,
        Key={"pk": {"S": f"exposure#{ACCOUNT}#policy-00000"}},
        UpdateExpression="SET signature = :bad",
        ExpressionAttributeValues={":bad": {"S": stored}},
    )
    summary = run(world)
    (payload,) = alerted(world).values()
    assert payload["finding"]["bucket"] == "policy-00000" and payload["sweep"]["reason"] == "changed"
    assert summary["counts"]["BucketErrors"] == 0
    assert json.loads(ledger_items(world)["policy-00000"]["signature"])  # rewritten: a token list
    run(world)
    assert world.alerts() == []  # and quiet again
