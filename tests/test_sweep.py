"""The scheduled sweep against a 1,000-bucket estate in moto: exactly the right alerts and closures per mode.

The estate (tests/sweep_estate.py) is built once for the module and swept in off, dry-run and
enforce mode (the exposure ledger cleared in between, so each mode alerts afresh), then swept
again to prove nothing is re-alerted. Every AWS operation the sweep makes is recorded at the
client seam and must be in its permission list (handlers/response/permissions.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from response_fixtures import ALL_ON, World, world_for
from sweep_estate import (
    APPROVAL_TAG,
    CLOSED_BY_ENFORCE,
    KINDS,
    Estate,
    Published,
    build_estate,
    capture_publishes,
    clear_ledger,
    configure_sweep,
    ledger_items,
    paged_listing,
)

from handlers.response.exposure_ledger import signature
from handlers.response.metrics import DIMENSION, METRICS, NAMESPACE
from handlers.response.permissions import sweep_calls_for
from handlers.sweep import function as sweep

COUNTS = {
    "policy": 120,
    "acl": 80,
    "held": 100,
    "heldacl": 50,
    "site": 40,
    "approved": 40,
    "expired": 40,
    "private": 450,
    "blocked": 80,
}
MODE_REMEDIATION = {"off": "skipped", "dry-run": "would-apply", "enforce": "applied"}
# Before the digest hour (08:00 UTC by default): the digest has its own tests.
BEFORE_DIGEST = datetime.now(UTC).replace(hour=3, minute=0, second=0, microsecond=0)


@pytest.fixture(scope="module")
def estate() -> Iterator[tuple[World, Estate, list[Published]]]:
    with pytest.MonkeyPatch.context() as monkeypatch, world_for(monkeypatch) as world:
        built = build_estate(world, COUNTS)
        # Pages of 300: four ListBuckets calls, each page naming each bucket's region.
        world.answer("s3", "ListBuckets", paged_listing(world, built, page_cap=300))
        published = capture_publishes(world)
        yield world, built, published


def sweep_in(world: World, mode: str) -> sweep.SweepSummary:
    configure_sweep(world, REMEDIATION_MODE=mode)
    return sweep.run_scheduled(sweep.current_settings(), now=BEFORE_DIGEST)


def assert_granted(world: World, mode: str) -> None:
    granted = {(c.service, c.operation) for c in sweep_calls_for(mode)}
    made = set(world.calls)
    assert made <= granted, sorted(made - granted)


def built_bpa(bucket: str) -> dict[str, bool] | None:
    """The bucket BPA the estate gave each kind (tests/sweep_estate.py)."""
    kind = bucket.split("-")[0]
    if kind in ("held", "blocked"):
        return ALL_ON
    if kind == "heldacl":
        return dict.fromkeys(ALL_ON, False) | {"IgnorePublicAcls": True}
    return None


def by_bucket(published: list[Published]) -> dict[str, Published]:
    found = {p.payload["finding"]["bucket"]: p for p in published}
    assert len(found) == len(published), "one alert per bucket"
    return found


def bpa_of(world: World, buckets: set[str]) -> dict[str, dict[str, bool] | None]:
    return {b: world.bucket_bpa(b) for b in sorted(buckets)}


def emf_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith('{"') and '"_aws"' in line]


# Enforce last: it closes buckets, and the estate is shared.
@pytest.mark.parametrize("mode", ["off", "dry-run", "enforce"])
def test_each_mode_alerts_exactly_the_exposed_unexcepted_buckets(estate, mode: str, capsys) -> None:
    world, built, published = estate
    clear_ledger(world)
    published.clear()
    world.calls.clear()
    capsys.readouterr()

    summary = sweep_in(world, mode)

    alerts = by_bucket(published)
    assert set(alerts) == built.alerting()
    assert summary["listed"] == summary["checked"] == sum(COUNTS.values())
    assert summary["completed"] and summary["enqueued"] == 0
    for bucket, alert in alerts.items():
        kind = bucket.split("-")[0]
        expected_status, _ = KINDS[kind]
        assert alert.payload["exposure"]["status"] == expected_status, bucket
        assert alert.payload["severity"] == ("high" if expected_status == "public-now" else "medium"), bucket
        assert alert.attributes["bucket"] == bucket and alert.attributes["verdict"] in ("public", "weakening")
        assert alert.payload["finding"]["region"] == built.regions[bucket]
        assert alert.payload["sweep"]["reason"] == "new"
        assert "[sweep]" in alert.subject
        remediation = alert.payload["remediation"]["status"]
        if kind == "held":  # the bucket's own BPA is all on already
            assert remediation == "not-needed", bucket
        else:
            assert remediation == MODE_REMEDIATION[mode], bucket
    for bucket in built.of("expired"):
        assert alerts[bucket].payload["approval"]["reason"].startswith(f"approval tag {APPROVAL_TAG}=")
        assert "expired at" in alerts[bucket].payload["approval"]["reason"]

    # Every bucket's BPA afterwards: as built, except what enforce closed.
    after = bpa_of(world, set(built.names))
    closed = built.of(*CLOSED_BY_ENFORCE) if mode == "enforce" else set()
    assert after == {bucket: ALL_ON if bucket in closed else built_bpa(bucket) for bucket in built.names}
    assert summary["remediated"] == sorted(closed)
    assert world.handler_calls("s3").count("PutPublicAccessBlock") == len(closed)
    # The account's BPA is read once per run, not once per bucket.
    assert world.handler_calls("s3control") == ["GetPublicAccessBlock"]
    assert world.handler_calls("s3").count("ListBuckets") == 4
    assert_granted(world, mode)

    # The ledger holds each alert's exposure signature: the next run compares against it.
    items = ledger_items(world)
    assert set(items) == built.alerting()
    for bucket, alert in alerts.items():
        assert json.loads(items[bucket]["signature"]) == list(signature(alert.payload["exposure"]))
        assert items[bucket]["source"] == "sweep" and items[bucket]["subject"] == alert.subject

    # One EMF line with the run's figures.
    (emf,) = emf_lines(capsys.readouterr().out)
    (directive,) = emf["_aws"]["CloudWatchMetrics"]
    assert directive == {
        "Namespace": NAMESPACE,
        "Dimensions": [[DIMENSION]],
        "Metrics": [{"Name": name, "Unit": "Count"} for name in METRICS],
    }
    public = len(built.of(*(k for k, (status, _) in KINDS.items() if status == "public-now")))
    assert {name: emf[name] for name in METRICS} == {
        "SweepCompleted": 1,
        "BucketsChecked": 1000,
        "BucketsPublic": public,  # the excepted ones too: public, on purpose
        "BucketsExposable": len(built.of("held", "heldacl")),
        "BucketsRemediated": len(built.of(*CLOSED_BY_ENFORCE)) if mode == "enforce" else 0,
        "BucketErrors": 0,
        "AlertsSent": len(built.alerting()),
        "BucketsEnqueued": 0,
        "ReviewsRequested": 0,  # no review queue configured here
    }
    assert emf[DIMENSION] == "prod-payments" and emf["sweepMode"] == "scheduled"
