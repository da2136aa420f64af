"""The sweep's summary metrics, as CloudWatch Embedded Metric Format (EMF) log lines.

CloudWatch Logs turns an EMF line into metrics on ingestion, so the function needs no
``cloudwatch:PutMetricData`` (an action IAM only grants on ``Resource: "*"``) and makes no
extra API call. The line goes to stdout with ``print``, not through ``logging``: Lambda's
Python runtime prefixes logged lines with level, time and request id, and a prefixed line
is not a JSON object, so CloudWatch would not extract it.

The alarms in ``stacks/alerting.py`` read these names: keep them in step.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

NAMESPACE = "S3ExposureDetector"
DIMENSION = "Detector"  # value: the stack's account name (ACCOUNT_NAME)
# SweepCompleted is 1 only on the scheduled run that listed every bucket and checked or
# enqueued all of them; the "sweep missed" alarm watches it.
METRICS = (
    "SweepCompleted",
    "BucketsChecked",
    "BucketsPublic",
    "BucketsExposable",
    "BucketsRemediated",
    "BucketErrors",
    "AlertsSent",
    "BucketsEnqueued",
    "ReviewsRequested",  # exposure windows (closed, or still open) sent to the exposure review
)


# The response function's own counters (one EMF line per refused event).
RESPONSE_METRICS = ("RejectedEvents",)


def emf_record(
    detector: str,
    values: Mapping[str, int],
    *,
    mode: str,
    now_ms: int | None = None,
    metrics: tuple[str, ...] = METRICS,
) -> dict[str, Any]:
    """One EMF document: every metric in :data:`METRICS` (0 when absent), dimension ``Detector``."""
    record: dict[str, Any] = {
        "_aws": {
            "Timestamp": int(time.time() * 1000) if now_ms is None else now_ms,
            "CloudWatchMetrics": [
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": [[DIMENSION]],
                    "Metrics": [{"Name": name, "Unit": "Count"} for name in metrics],
                }
            ],
        },
        DIMENSION: detector,
        "sweepMode": mode,  # a property, not a dimension: scheduled | worker
    }
    for name in metrics:
        record[name] = int(values.get(name, 0))
    return record


def emit(
    detector: str,
    values: Mapping[str, int],
    *,
    mode: str,
    stream: TextIO | None = None,
    metrics: tuple[str, ...] = METRICS,
) -> dict[str, Any]:
    """Write the EMF line to stdout (or ``stream``) and return the document."""
    record = emf_record(detector, values, mode=mode, metrics=metrics)
    print(json.dumps(record, sort_keys=True), file=stream or sys.stdout, flush=True)
    return record
