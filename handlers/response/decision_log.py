"""One JSON object per decision, in CloudWatch and offline alike (the Powertools convention).

The functions deploy with Lambda's JSON log format (``logging_config`` in
``stacks/response_function.py``). The Python runtime's handler on the root logger then writes
every record as one JSON object: ``timestamp``, ``level``, ``message``, ``logger``, ``requestId``,
and each attribute given in ``extra`` as a top-level key (AWS Lambda Developer Guide, "Log and
monitor Python Lambda functions", JSON format; ``awslambdaric.lambda_runtime_log_utils.JsonFormatter``).
A dict given as the message would come out as its Python ``repr`` in ``message``, and a JSON
string as an escaped string, so :func:`log_decision` logs the decision's name as the message
and the decision's fields through ``extra``: ``{"message": "finding", "decision": "finding",
"bucket": ..., ...}``.

Outside Lambda (the demo's runtime, the CLIs) :func:`configure_logging` writes the same shape
with :class:`JsonLineFormatter`, one line per record.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from datetime import UTC, datetime
from typing import Any

from handlers.detection.timestamps import utc_text

# Attributes every LogRecord has: ``extra`` may not set them (logging raises KeyError).
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
# Keys the runtime's JSON line sets itself; a field of the same name would be dropped.
RUNTIME_KEYS = frozenset(
    {"timestamp", "level", "message", "logger", "requestId", "location", "stackTrace", "errorType",
     "errorMessage", "tenantId"}
)  # fmt: skip
RESERVED = _RECORD_ATTRIBUTES | RUNTIME_KEYS


def decision_fields(decision: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The top-level keys of one decision line: ``decision`` and ``fields``, made JSON-safe.

    The runtime's encoder has no fallback, so values are passed through JSON here (anything else
    becomes its ``str``). A field named like a reserved key gets a trailing ``_`` (``level_``).
    """
    safe = json.loads(json.dumps(fields, default=str))
    return {
        "decision": decision,
        **{f"{key}_" if key in RESERVED else key: value for key, value in safe.items()},
    }


def log_decision(logger: logging.Logger, decision: str, **fields: Any) -> None:
    """One JSON object for the decision (INFO), its fields at top level.

    Called through each handler module's own ``log_decision``: the record's location is that caller's.
    """
    logger.info(decision, extra=decision_fields(decision, fields), stacklevel=3)


def log_decision_at(logger: logging.Logger, level: int, decision: str, **fields: Any) -> None:
    """:func:`log_decision` at ``level`` (a warning or an error), called directly."""
    logger.log(level, decision, extra=decision_fields(decision, fields), stacklevel=2)


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """What a record adds at top level (``decision`` and its fields): what tests read back."""
    return {key: value for key, value in vars(record).items() if key not in _RECORD_ATTRIBUTES}


class JsonLineFormatter(logging.Formatter):
    """The runtime's JSON line, for logs written outside Lambda."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": utc_text(datetime.fromtimestamp(record.created, UTC), "milliseconds"),
            "level": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
        }
        if record.exc_info and record.exc_info[0] is not None:
            line["errorType"] = record.exc_info[0].__name__
            line["errorMessage"] = str(record.exc_info[1])
            line["stackTrace"] = traceback.format_tb(record.exc_info[2])
        line.update((key, value) for key, value in record_fields(record).items() if key not in line)
        return json.dumps(line, default=str, ensure_ascii=False)


def configure_logging(level: str) -> None:
    """Log ``handlers.*`` at ``level``; with no root handler (outside Lambda), as JSON lines on stdout.

    In Lambda the runtime's root handler writes each record as JSON (the stacks set the log format),
    and under pytest the capture handler sits there; records propagate to it in both cases.
    """
    logger = logging.getLogger("handlers")
    logger.setLevel(level)
    if not logging.getLogger().handlers and not logger.handlers:
        stream = logging.StreamHandler(sys.stdout)
        stream.setFormatter(JsonLineFormatter())
        logger.addHandler(stream)
