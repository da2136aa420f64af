"""The sweep's pure parts: exposure signatures and what counts as news, settings, permissions, EMF."""

from __future__ import annotations

import io
import json

import pytest

from handlers.response.exposure_ledger import is_news, signature
from handlers.response.metrics import METRICS, emf_record, emit
from handlers.response.permissions import CONFIRM_CALLS, calls_for, sweep_calls_for
from handlers.response.response_config import ConfigError
from handlers.sweep.config import load_sweep_settings

BASE_ENV = {
    "ALERT_TOPIC_ARN": "arn:aws:sns:us-east-1:111122223333:alerts",
    "EXPECTED_ACCOUNT_ID": "111122223333",
    "IDEMPOTENCY_TABLE": "seen-events",
}


def path(via: str, access: list[str], effective: bool, held_by: list[str] | None = None) -> dict:
    return {"via": via, "access": access, "effective": effective, "held_back_by": held_by or [], "detail": ""}


def exposure(*paths: dict) -> dict:
    return {"paths": list(paths)}


def test_signature_names_path_access_and_state():
    public = exposure(path("policy", ["read", "write"], True), path("bucket-acl", ["read"], False, ["x"]))
    assert signature(public) == ("bucket-acl/read/held", "policy/read/public", "policy/write/public")
    assert signature(exposure(path("policy", [], False))) == ("policy/unknown/undecided",)


@pytest.mark.parametrize(
    ("current", "recorded", "news"),
    [
        pytest.param(["policy/read/public"], None, True, id="nothing-recorded"),
        pytest.param(["policy/read/public"], ["policy/read/public"], False, id="same"),
        pytest.param(["policy/read/held"], ["policy/read/public"], False, id="improved-held-back"),
        pytest.param(["policy/read/public"], ["policy/read/held"], True, id="relapsed"),
        pytest.param(["policy/read/public", "policy/write/public"], ["policy/read/public"], True, id="wider"),
        pytest.param(
            ["policy/read/public"], ["policy/read/public", "policy/write/public"], False, id="narrower"
        ),
        pytest.param(["bucket-acl/read/public"], ["policy/read/public"], True, id="another-path"),
        pytest.param(["policy/read/undecided"], ["policy/read/held"], False, id="guard-unreadable"),
        pytest.param([], ["policy/read/public"], False, id="nothing-now"),
    ],
)
def test_what_is_news(current, recorded, news):
    assert is_news(current, recorded) is news


def test_sweep_settings_defaults_and_errors():
    settings = load_sweep_settings(BASE_ENV)
    assert (settings.work_queue_url, settings.fanout_threshold, settings.threads) == (None, 3000, 16)
    assert (settings.batch_size, settings.digest_hour) == (500, 8)
    assert settings.base.remediation_mode == "off"
    queue = "https://sqs.eu-west-1.amazonaws.com/111122223333/prod-sweep-work"
    tuned = load_sweep_settings(BASE_ENV | {"SWEEP_WORK_QUEUE_URL": queue, "SWEEP_THREADS": "32"})
    assert (tuned.work_queue_url, tuned.threads) == (queue, 32)
    for name, value, expected in (
        ("SWEEP_THREADS", "many", "SWEEP_THREADS: expected an integer from 1 to 128"),
        ("SWEEP_FANOUT_THRESHOLD", "0", "SWEEP_FANOUT_THRESHOLD: expected an integer"),
        ("SWEEP_BATCH_SIZE", "5000", "SWEEP_BATCH_SIZE: expected an integer from 1 to 2000"),
        ("SWEEP_DIGEST_HOUR", "24", "SWEEP_DIGEST_HOUR: expected an integer from 0 to 23"),
        ("SWEEP_WORK_QUEUE_URL", "prod-sweep-work", "SWEEP_WORK_QUEUE_URL: expected an SQS queue URL"),
    ):
        with pytest.raises(ConfigError, match=expected):
            load_sweep_settings(BASE_ENV | {name: value})
    with pytest.raises(ConfigError, match="ALERT_TOPIC_ARN"):
        load_sweep_settings({})


@pytest.mark.parametrize("mode", ["off", "dry-run", "enforce"])
def test_sweep_permissions_extend_the_response_reads_and_never_touch_the_account(mode):
    ops = {(c.service, c.operation) for c in sweep_calls_for(mode)}
    assert {(c.service, c.operation) for c in CONFIRM_CALLS} <= ops
    assert ("s3", "ListBuckets") in ops and ("sqs", "SendMessageBatch") in ops
    assert ("s3control", "PutPublicAccessBlock") not in ops
    assert (("s3", "PutPublicAccessBlock") in ops) is (mode == "enforce")
    # The response Lambda's own list is unchanged by the sweep's additions.
    assert ("s3", "ListBuckets") not in {(c.service, c.operation) for c in calls_for(mode, True)}
    with pytest.raises(ValueError, match="unknown remediation mode"):
        sweep_calls_for("auto")


def test_emf_line_is_one_json_object_on_stdout():
    stream = io.StringIO()
    record = emit(
        "prod", {"BucketsChecked": 7, "SweepCompleted": 1, "not-a-metric": 3}, mode="scheduled", stream=stream
    )
    line = stream.getvalue()
    assert line.endswith("\n") and line.count("\n") == 1
    assert json.loads(line) == record
    assert record["BucketsChecked"] == 7 and record["BucketErrors"] == 0 and "not-a-metric" not in record
    fixed = emf_record("prod", {}, mode="worker", now_ms=1_700_000_000_000)
    assert fixed["_aws"]["Timestamp"] == 1_700_000_000_000
    assert [m["Name"] for m in fixed["_aws"]["CloudWatchMetrics"][0]["Metrics"]] == list(METRICS)
