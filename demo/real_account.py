"""``python -m demo --real-account``: the same replay, read-only, against a stack deployed in AWS.

It reads the deployed rules (every watched region) and the function's configuration with
your default AWS credentials, matches every dataset event against the rules as deployed,
checks that the function's environment holds every setting the code needs, and runs the
classifier (pure code) on each routed event. It makes no call that changes anything: no
state is replayed, the function is not invoked, nothing is published or remediated. A
guard on every client refuses any operation that is not a ``Get``, ``List`` or
``Describe`` before it is sent.

Needs: ``events:ListRules``, ``events:DescribeRule``, ``events:ListTargetsByRule`` in each
watched region and ``lambda:GetFunctionConfiguration`` in the home region. Never runs
under pytest: nothing in the test suite may reach a real account.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

READ_ONLY_PREFIXES = ("Get", "List", "Describe")
Say = Callable[[str], None]


class WriteRefused(RuntimeError):
    """A client was about to make a call that is not read-only."""


def refuse_writes(client: Any) -> Any:
    """Make ``client`` raise :class:`WriteRefused` before sending any non-read operation."""

    def guard(model: Any, **_: Any) -> None:
        if not model.name.startswith(READ_ONLY_PREFIXES):
            raise WriteRefused(f"{client.meta.service_model.service_name}:{model.name} is not read-only")

    client.meta.events.register("before-call", guard)
    return client


class ReadOnlyClients:
    """Default-credential clients for a real account, each behind the read-only guard."""

    def __init__(self) -> None:
        import boto3

        self.session = boto3.session.Session()
        self._clients: dict[tuple[str, str], Any] = {}

    def client(self, service: str, region: str) -> Any:
        key = (service, region)
        if key not in self._clients:
            self._clients[key] = refuse_writes(self.session.client(service, region_name=region))
        return self._clients[key]


def run(config_path: str | None, stack: str | None, say: Say = print) -> int:
    """Replay read-only against the real account of ``stack``; 1 when a verdict differs from its label."""
    if os.environ.get("PYTEST_CURRENT_TEST"):
        say("refused: --real-account never runs under pytest (it would reach a real AWS account)")
        return 2
    for name in ("DETECTOR_AWS_ENDPOINT", "AWS_ENDPOINT_URL"):
        if os.environ.get(name):
            say(f"refused: {name} is set; --real-account reads the real account, not an emulator")
            return 2
    from demo import deployed
    from demo.replay import EventRow, load_cases
    from demo.report import confusion, table
    from handlers.detection.classify import classify
    from handlers.detection.event_patterns import envelope
    from handlers.detection.records import as_text, client_kind
    from handlers.response.response_config import ConfigError as SettingsError
    from handlers.response.response_config import load_settings
    from stacks.config import DEFAULT_CONFIG_PATH, load_config

    config = load_config(Path(config_path) if config_path else DEFAULT_CONFIG_PATH)
    account = config.account(stack) if stack else config.accounts[0]
    clients = ReadOnlyClients()
    say(f"reading stack {account.name} in account {account.account_id}, regions {', '.join(account.regions)}")
    rules = deployed.read_rules(clients, account.regions, f"{account.name}-")
    arns = deployed.function_arns(rules)
    if len(arns) != 1:
        say(f"error: expected the rules to target exactly one function, found {arns or 'none'}")
        return 2
    function = deployed.read_function(clients, arns[0])
    try:
        settings = load_settings(function.environment)
        say(f"function {function.name}: environment complete (mode {settings.remediation_mode})")
        env_ok = True
    except SettingsError as exc:
        say(f"function {function.name}: environment INCOMPLETE: {exc}")
        env_ok = False
    rows: list[EventRow] = []
    for case in load_cases():
        record = copy.deepcopy(case.record)
        row = EventRow(
            case.id,
            as_text(record.get("eventName")) or "?",
            client_kind(as_text(record.get("userAgent"))),
            case.expect["verdict"],
        )
        row.routes = deployed.route(envelope(record), rules, function.arn)
        findings = classify(record) if row.routes else []
        if findings:
            row.verdict = findings[0]["verdict"]
            row.severity = findings[0]["severity"]
            row.subject = "(not published: read-only)"
        rows.append(row)
    say(table(rows))
    counts = confusion(rows)
    mismatches = [r for r in rows if r.verdict != r.label]
    say(
        f"read-only pass: TP {counts['TP']}  FN {counts['FN']}  TN {counts['TN']}  FP {counts['FP']}  "
        f"(undetermined {counts['undetermined']}); verdict = label for {counts['agree']}/{len(rows)}"
    )
    for row in mismatches:
        rules = "+".join(row.routes) or "none"
        say(f"  - {row.case_id}: verdict {row.verdict!r}, labelled {row.label!r} (rules: {rules})")
    return 1 if mismatches or not env_ok else 0
