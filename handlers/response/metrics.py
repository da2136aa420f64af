"""The sweep's summary metrics, as CloudWatch Embedded Metric Format (EMF) log lines.

CloudWatch Logs turns an EMF line into metrics on ingestion, so the function needs no
``cloudwatch:PutMetricData`` (an action IAM only grants on ``Resource: "*"``) and makes no
extra API call. The line goes to stdout with ``print``, not through ``logging``: Lambda's
Python runtime wraps a logged record (in the JSON log format, as the ``message`` of its own
object; in the text format, behind level, time and request id), and CloudWatch extracts
metrics only from a line that is the EMF document itself. ``print`` is passed through as is.

Each metric is named once, in :class:`Metric`: the handlers count with its members and the alarms
in ``stacks/alerting.py`` watch them.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, TextIO

NAMESPACE = "S3ExposureDetector"
DIMENSION = "Detector"  # value: the stack's account name (ACCOUNT_NAME)


class Metric(StrEnum):
    """Every metric the functions emit, in namespace :data:`NAMESPACE`."""

    # 1 only on the scheduled run that listed every bucket and checked or enqueued all of them;
    # the "sweep missed" alarm watches it.
    SWEEP_COMPLETED = "SweepCompleted"
    BUCKETS_CHECKED = "BucketsChecked"
    BUCKETS_PUBLIC = "BucketsPublic"
    BUCKETS_EXPOSABLE = "BucketsExposable"
    BUCKETS_REMEDIATED = "BucketsRemediated"
    BUCKET_ERRORS = "BucketErrors"  # buckets whose exposure could not be decided; alarmed
    ALERTS_SENT = "AlertsSent"
    BUCKETS_ENQUEUED = "BucketsEnqueued"
    REVIEWS_REQUESTED = "ReviewsRequested"  # exposure windows sent to the exposure review
    REJECTED_EVENTS = "RejectedEvents"  # the response function's: events of doubtful provenance


# The sweep's line: every run reports all of these (0 when nothing happened).
METRICS: tuple[Metric, ...] = tuple(m for m in Metric if m is not Metric.REJECTED_EVENTS)
# The response function's own counters (one EMF line per refused event).
RESPONSE_METRICS: tuple[Metric, ...] = (Metric.REJECTED_EVENTS,)


def emf_record(
    detector: str,
    values: Mapping[str, int],
    *,
    mode: str,
    now_ms: int | None = None,
    metrics: tuple[Metric, ...] = METRICS,
) -> dict[str, Any]:
    """One EMF document: every metric in ``metrics`` (0 when absent), dimension ``Detector``.

    ``values`` may hold other counts too (the sweep's per-outcome tallies); only metrics are sent.
    """
    record: dict[str, Any] = {
        "_aws": {
            "Timestamp": int(time.time() * 1000) if now_ms is None else now_ms,
            "CloudWatchMetrics": [
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": [[DIMENSION]],
                    "Metrics": [{"Name": name.value, "Unit": "Count"} for name in metrics],
                }
            ],
        },
        DIMENSION: detector,
        "sweepMode": mode,  # a property, not a dimension: scheduled | worker
    }
    for name in metrics:
        record[name.value] = int(values.get(name, 0))
    return record


def emit(
    detector: str,
    values: Mapping[str, int],
    *,
    mode: str,
    stream: TextIO | None = None,
    metrics: tuple[Metric, ...] = METRICS,
) -> dict[str, Any]:
    """Write the EMF line to stdout (or ``stream``) and return the document."""
    record = emf_record(detector, values, mode=mode, metrics=metrics)
    print(json.dumps(record, sort_keys=True), file=stream or sys.stdout, flush=True)
    return record
