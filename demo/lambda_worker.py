"""The inside of an emulated Lambda container: load the deployed package, run its handler per event.

Started by :mod:`demo.lambda_runtime` as a script (never imported), with the function's
environment and nothing else: ``sys.path`` holds the extracted deployment package and the
interpreter's site-packages (boto3), not the repository, so the code that runs is the code
that was deployed. Protocol: one JSON request per line on stdin (``{"event": ..., "remaining_ms": ...}``),
one JSON reply per line on the original stdout; the handler's own prints and logs go to
stderr and are returned with the reply, as CloudWatch would hold them.

Every AWS call the handler makes is observed through the package's client seam
(``handlers.response.aws_clients.add_client_hook``) with its outcome, so the harness can report
refused calls and when the bucket was closed.

An optional second argument names a JSON file of CloudTrail records: the emulator has no
``LookupEvents``, so CloudTrail clients get the local fake (:mod:`lookup_events_fake`, in this
directory) answering from those records in AWS's documented shapes. Nor has it Security Hub's
``BatchUpdateFindings``: :func:`security_hub_gaps` answers it in AWS's documented shape.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
import sys
import time
import traceback
import uuid
from typing import Any

_ACCOUNT_HOST = re.compile(r"^(https?://)\d{12}\.(?=127\.0\.0\.1[:/])")


class Context:
    """The part of the Lambda context object handlers use."""

    def __init__(self, remaining_ms: int) -> None:
        self._deadline = time.monotonic() + remaining_ms / 1000
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
        self.aws_request_id = str(uuid.uuid4())
        self.invoked_function_arn = os.environ.get("DEMO_FUNCTION_ARN", "")

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class Collector(logging.Handler):
    """The runtime's root log handler: keep each line for the reply."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def reach_emulator(client: Any) -> None:
    """Emulator plumbing: s3control puts the account id in front of any endpoint's host
    (``123456789012.127.0.0.1``), which does not resolve; send it to the endpoint itself.
    Done before signing, so the signature covers the host that is really used."""
    if client.meta.service_model.service_name != "s3control":
        return

    def strip_account_prefix(params: dict[str, Any], **_: Any) -> None:
        params["url"] = _ACCOUNT_HOST.sub(r"\1", params["url"])

    client.meta.events.register("before-call", strip_account_prefix)


def observe(calls: list[dict[str, Any]]) -> Any:
    """A client hook recording every call's service, operation, outcome and finish time."""

    def hook(client: Any) -> None:
        service = client.meta.service_model.service_name

        def after(http_response: Any, parsed: dict[str, Any], model: Any, **_: Any) -> None:
            error = (parsed or {}).get("Error") or {}
            calls.append(
                {
                    "service": service,
                    "operation": model.name,
                    "status": getattr(http_response, "status_code", None),
                    "error": error.get("Code"),
                    "at": time.time(),
                }
            )

        client.meta.events.register("after-call", after)

    return hook


def security_hub_gaps(client: Any) -> None:
    """The emulator has no ``BatchUpdateFindings``: answer it as AWS documents (every finding
    processed), so the function's workflow updates go through. Imports and reads reach moto."""
    if client.meta.service_model.service_name != "securityhub":
        return

    def answer(model: Any, params: dict[str, Any], **_: Any) -> Any:
        if model.name != "BatchUpdateFindings":
            return None
        body = json.loads(params.get("body") or b"{}")
        return _Http(), {"ProcessedFindings": body.get("FindingIdentifiers", []), "UnprocessedFindings": []}

    client.meta.events.register("before-call", answer)


class _Http:
    """The HTTP response botocore expects beside an answer given before the call."""

    def __init__(self) -> None:
        self.status_code = 200
        self.headers: dict[str, str] = {}


def lookup_events_from(path: str) -> Any:
    """A client hook giving CloudTrail clients the fake LookupEvents seeded from ``path``."""
    from lookup_events_fake import LookupEventsFake  # this script's directory is on sys.path

    with open(path, encoding="utf-8") as handle:
        fake = LookupEventsFake(json.load(handle))

    def hook(client: Any) -> None:
        if client.meta.service_model.service_name == "cloudtrail":
            fake.install(client)

    return hook


def main() -> int:
    package_dir = sys.argv[1]
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything the handler prints must not corrupt the protocol
    sys.stdout = sys.stderr
    sys.path.insert(0, package_dir)
    collector = Collector()
    root = logging.getLogger()
    root.addHandler(collector)  # like Lambda's runtime: a root handler exists before the code loads
    root.setLevel(logging.INFO)
    calls: list[dict[str, Any]] = []
    module_name, function_name = os.environ["_HANDLER"].rsplit(".", 1)
    try:
        # The stacks deploy Lambda's JSON log format: one JSON object per record, as the runtime writes it.
        collector.setFormatter(importlib.import_module("handlers.response.decision_log").JsonLineFormatter())
        handler = getattr(importlib.import_module(module_name), function_name)
        seam = importlib.import_module("handlers.response.aws_clients")
        seam.add_client_hook(reach_emulator)
        seam.add_client_hook(observe(calls))
        seam.add_client_hook(security_hub_gaps)
        if len(sys.argv) > 2:
            seam.add_client_hook(lookup_events_from(sys.argv[2]))
        init_error = None
    except Exception as exc:  # an import error fails every invocation, as in Lambda
        handler, init_error = None, f"{type(exc).__name__}: {exc}"
    for line in sys.stdin:
        request = json.loads(line)
        calls.clear()
        collector.lines.clear()
        reply: dict[str, Any] = {"result": None, "error": None}
        started = time.time()
        if handler is None:
            reply["error"] = {"type": "Runtime.ImportModuleError", "message": init_error}
        else:
            try:
                reply["result"] = handler(request["event"], Context(int(request.get("remaining_ms", 60_000))))
            except Exception as exc:
                reply["error"] = {
                    "type": type(exc).__name__,
                    "message": str(exc),
                    "trace": traceback.format_exc(limit=5),
                }
        reply.update(started=started, finished=time.time(), calls=list(calls), logs=list(collector.lines))
        replies.write(json.dumps(reply, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
