"""The rule registry is the single source of truth: what a rule reads, the deployment records and routes.

For every rule module (``handlers.detection.rules.RULE_MODULES``):

- **recorded**: each event it reads is recorded by the synthesized trail's selectors, management
  events always and its declared data events whenever the account pays for them; a call the
  dataset shows as a data event must be declared one (else the trail would never record it);
- **routed**: a labelled case of each event it reads, as EventBridge delivers it, matches the
  deployed rule of the case's route (LocalStack's rule engine, ``demo/pattern_engine.py``).

The checks are plain functions over the registry, so the last tests run them on copies of the
registry with one declaration removed and see them fail.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from demo.dataset_loader import Case, load_cases
from demo.pattern_engine import matches
from handlers.detection import event_patterns
from handlers.detection.classify import classify
from handlers.detection.event_patterns import ROUTES, RuleSpec, envelope, route_pattern, rules_for
from handlers.detection.rules import (
    REPLAY_HINTS,
    RULE_MODULES,
    TARGET_LABELS,
    acl_grants,
    blind_spots,
    confirmation_of,
    data_events_of,
    management_events_of,
    outposts,
    patterns_of,
)
from handlers.detection.rules.declarations import Confirmation
from handlers.detection.rules.detector_context import DetectorContext
from stacks import trail
from stacks.config import AccountConfig, blind_spot_warnings, load_config, parse_config
from stacks.rules import detector_context
from stacks.synth import synth_config

ROOT = Path(__file__).resolve().parents[1]

CASES = load_cases()
# An account that pays for every data event a rule declares, so all of them must be recorded.
ALL_DATA_ACCOUNT = {
    "name": "registry",
    "account_id": "444444444444",
    "home_region": "us-west-2",
    "trail": {"object_acl_data_events": True, "object_write_data_events": True, "kms_encryption": False},
}


def short_name(module: Any) -> str:
    return module.__name__.rsplit(".", 1)[-1]


# ---- recorded: the trail's selectors against what each rule reads ----


@dataclass(frozen=True)
class Recorded:
    """What a trail's selectors record: write management events, and data events per resource type."""

    management: bool
    data: dict[str, frozenset[str] | None]  # resource type -> event names (None: every write call)


def recorded_by(selectors: list[dict[str, Any]] | None) -> Recorded:
    """Read synthesized ``advanced_event_selector`` blocks (none at all: the default, management only)."""
    if not selectors:
        return Recorded(True, {})
    management, data = False, {}
    for selector in selectors:
        fields = {f["field"]: f.get("equals") for f in selector["field_selector"]}
        if fields.get("readOnly") == ["true"]:
            continue  # reads only: none of the calls a rule reads
        category = fields.get("eventCategory") or []
        if "Management" in category:
            management = True
        if "Data" in category:
            names = fields.get("eventName")
            for resource_type in fields.get("resources.type") or []:
                known = data.get(resource_type, frozenset())
                data[resource_type] = None if names is None or known is None else known | set(names)
    return Recorded(management, data)


def unrecorded(modules: Sequence[Any], recorded: Recorded, account: AccountConfig) -> list[str]:
    """Every (rule, event) the trail does not record although the account pays for it."""
    problems = []
    for module in modules:
        if not recorded.management:
            problems += [f"{short_name(module)}: management event {n}" for n in management_events_of(module)]
        for events in data_events_of(module):
            if not getattr(account, events.option):
                continue  # the account chose not to pay for these data events
            names = recorded.data.get(events.resource_type, frozenset())
            problems += [
                f"{short_name(module)}: data event {name} ({events.resource_type}, {events.option})"
                for name in events.event_names
                if names is not None and name not in names
            ]
    return problems


def undeclared_data_events(modules: Sequence[Any], cases: Sequence[Case]) -> list[str]:
    """Calls the dataset shows as data events that their rule does not declare as data events."""
    by_name = {short_name(m): m for m in modules}
    problems = []
    for case in cases:
        module = by_name.get(case.rule)
        record = case.record
        if module is None or record["eventSource"] != module.EVENT_SOURCE:
            continue
        if record.get("eventCategory") == "Data" or record.get("managementEvent") is False:
            declared = {n for events in data_events_of(module) for n in events.event_names}
            if record["eventName"] not in declared:
                problems.append(f"{case.id}: {record['eventName']} is a data event not in DATA_EVENTS")
    return problems


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory) -> tuple[AccountConfig, dict[str, Any]]:
    config = parse_config({"accounts": [ALL_DATA_ACCOUNT]})
    stack = synth_config(config, tmp_path_factory.mktemp("registry"))["registry"]
    return config.accounts[0], stack


def deployed_selectors(stack: dict[str, Any]) -> list[dict[str, Any]] | None:
    (trail_resource,) = stack["resource"]["aws_cloudtrail"].values()
    return trail_resource.get("advanced_event_selector")


def test_every_rule_event_is_recorded_by_the_synthesized_trail(synthesized) -> None:
    account, stack = synthesized
    assert unrecorded(RULE_MODULES, recorded_by(deployed_selectors(stack)), account) == []


def test_every_data_event_in_the_dataset_is_declared_as_one() -> None:
    assert undeclared_data_events(RULE_MODULES, CASES) == []


def test_an_account_that_pays_for_no_data_events_still_records_every_management_event() -> None:
    account = parse_config({"accounts": [{**ALL_DATA_ACCOUNT, "trail": {}}]}).accounts[0]
    assert trail.data_event_names(account) == {}
    assert unrecorded(RULE_MODULES, recorded_by(None), account) == []


# ---- routed: labelled cases against the deployed EventBridge rules ----


def unrouted(
    modules: Sequence[Any], cases: Sequence[Case], rules: Callable[[DetectorContext], Sequence[RuleSpec]]
) -> list[str]:
    """Every (rule, event) without a labelled finding case that a deployed rule of its route matches."""
    problems = []
    for module in modules:
        for name in module.EVENT_NAMES:
            mine = [
                c
                for c in cases
                if c.rule == short_name(module)
                and c.verdict != "none"
                and c.record["eventSource"] == module.EVENT_SOURCE
                and c.record["eventName"] == name
            ]
            if not mine:
                problems.append(f"{short_name(module)}: no labelled finding case for {name}")
            for case in mine:
                event = envelope(case.record)
                matched = [rule.route for rule in rules(case.detector) if matches(rule.pattern_json(), event)]
                route = case.expect.get("route")
                if (route and route not in matched) or not matched:
                    problems.append(f"{case.id}: {name} not routed to {route} (matched {matched})")
    return problems


def test_every_rule_event_is_routed_by_a_deployed_pattern() -> None:
    assert unrouted(RULE_MODULES, CASES, rules_for) == []


def test_the_stack_deploys_the_registry_patterns(synthesized) -> None:
    account, stack = synthesized
    rules = stack["resource"]["aws_cloudwatch_event_rule"].values()
    deployed = {r["name"]: r.get("event_pattern") for r in rules}
    # The trail-tamper pattern names the stack's key by a Terraform token (tests/test_stack_synth.py).
    for rule in rules_for(detector_context(account, None)):
        name = f"{account.name}-s3-exposure-{rule.route}"
        assert name in deployed, name
        if rule.route != "trail-tamper":
            assert deployed[name] == rule.pattern_json(), rule.route


def test_every_event_source_a_rule_reads_is_deployed_and_accepted() -> None:
    sources = {m.EVENT_SOURCE for m in RULE_MODULES}
    assert set(event_patterns.EVENTBRIDGE_SOURCES) == sources
    context = DetectorContext(trail_bucket="b", trail_key_arn="arn:aws:kms:us-east-1:111111111111:key/k")
    deployed = {s for rule in rules_for(context) for s in rule.pattern["source"]}
    assert deployed == set(event_patterns.EVENTBRIDGE_SOURCES.values())


# ---- the other declarations ----


@pytest.mark.parametrize("module", RULE_MODULES, ids=short_name)
def test_declarations_are_complete_and_consistent(module: ModuleType) -> None:
    names = set(module.EVENT_NAMES)
    assert confirmation_of(module), "CONFIRMATION is required"
    assert set(getattr(module, "REPLAY", {})) <= names
    for events in data_events_of(module):
        assert set(events.event_names) <= names
    assert {part.route for part in patterns_of(module)} <= set(ROUTES)


ALERT_ONLY: list[Case] = [
    c
    for c in CASES
    for m in RULE_MODULES
    if short_name(m) == c.rule and "alert-only" in confirmation_of(m) and c.verdict != "none"
]


@pytest.mark.parametrize("case", ALERT_ONLY, ids=lambda c: c.id)
def test_alert_only_targets_name_no_bucket_so_nothing_is_remediated(case: Case) -> None:
    # The response function closes buckets only; a finding without one is alerted, never acted on.
    for finding in classify(copy.deepcopy(case.record), case.detector):
        assert finding["bucket"] is None and finding["scope"] in TARGET_LABELS
        assert finding["accessPoint"], "the alert names the target from accessPoint"


def test_replay_hints_come_from_the_rules() -> None:
    assert REPLAY_HINTS[("s3.amazonaws.com", "CreateMultipartUpload")] == "put-object"
    assert ("s3-outposts.amazonaws.com", "PutObject") not in REPLAY_HINTS  # moto has no Outposts


# ---- the checks fail when a declaration is missing (run on copies of the registry) ----


def module_copy(module: ModuleType, **declarations: Any) -> SimpleNamespace:
    """A stand-in for ``module`` with some declarations replaced (the module itself is untouched)."""
    names = ("EVENT_SOURCE", "EVENT_NAMES", "DATA_EVENTS", "PATTERNS", "CONFIRMATION", "REPLAY", "classify")
    fields = {n: getattr(module, n) for n in names if hasattr(module, n)}
    return SimpleNamespace(__name__=module.__name__, **{**fields, **declarations})


def registry_with(original: ModuleType, stand_in: SimpleNamespace) -> tuple[Any, ...]:
    return tuple(stand_in if m is original else m for m in RULE_MODULES)


def without_multipart_upload() -> SimpleNamespace:
    data = tuple(
        replace(e, event_names=tuple(n for n in e.event_names if n != "CreateMultipartUpload"))
        for e in acl_grants.DATA_EVENTS
    )
    return module_copy(acl_grants, DATA_EVENTS=data)


def test_a_trail_built_without_a_data_event_declaration_fails_the_check(
    synthesized, monkeypatch: pytest.MonkeyPatch
) -> None:
    account, _ = synthesized
    # The trail as stacks.trail derives it from a registry that forgot the declaration ...
    monkeypatch.setattr(trail, "RULE_MODULES", registry_with(acl_grants, without_multipart_upload()))
    chosen = trail.data_event_names(account)
    assert "CreateMultipartUpload" not in chosen["AWS::S3::Object"]
    recorded = Recorded(True, {kind: frozenset(names) for kind, names in chosen.items()})
    # ... misses what the real rule needs.
    assert unrecorded(RULE_MODULES, recorded, account) == [
        "acl_grants: data event CreateMultipartUpload (AWS::S3::Object, object_write_data_events)"
    ]


def test_a_deployed_trail_missing_a_name_fails_the_check(synthesized) -> None:
    account, stack = synthesized
    selectors = copy.deepcopy(deployed_selectors(stack))
    for selector in selectors:
        for field in selector["field_selector"]:
            if field["field"] == "eventName" and "PutObjectAcl" in field["equals"]:
                field["equals"].remove("PutObjectAcl")
    assert unrecorded(RULE_MODULES, recorded_by(selectors), account) == [
        "acl_grants: data event PutObjectAcl (AWS::S3::Object, object_acl_data_events)"
    ]


def test_a_data_event_left_undeclared_fails_the_check() -> None:
    problems = undeclared_data_events(registry_with(acl_grants, without_multipart_upload()), CASES)
    assert problems and all("CreateMultipartUpload is a data event" in p for p in problems)


def test_a_rule_without_its_pattern_pieces_fails_the_routing_check(monkeypatch: pytest.MonkeyPatch) -> None:
    modules = registry_with(outposts, module_copy(outposts, PATTERNS=()))
    monkeypatch.setattr(event_patterns, "RULE_MODULES", modules)

    def rules(context: DetectorContext) -> list[RuleSpec]:
        return [RuleSpec(route, "", route_pattern(route, context)) for route in ROUTES]

    problems = unrouted(modules, CASES, rules)
    assert problems and all(p.startswith("outposts/") for p in problems), problems


def test_a_new_event_name_without_a_labelled_case_fails_the_routing_check() -> None:
    modules = registry_with(
        outposts, module_copy(outposts, EVENT_NAMES=(*outposts.EVENT_NAMES, "PutObjectAcl"))
    )
    assert unrouted(modules, CASES, rules_for) == ["outposts: no labelled finding case for PutObjectAcl"]


CONFIRMATIONS: tuple[Confirmation, ...] = ("bucket", "account", "access-point", "alert-only", "none")


def test_confirmations_are_known_values() -> None:
    assert {c for m in RULE_MODULES for c in confirmation_of(m)} <= set(CONFIRMATIONS)


# ---- regions: calls AWS records in fixed regions only ----


def test_a_deployment_must_watch_the_region_a_fixed_region_call_is_recorded_in() -> None:
    assert blind_spots(["us-east-1", "us-west-2"]) == []
    assert blind_spots(["us-east-1", "eu-west-1"]) == [
        "multi_region_access_point_policy: PutMultiRegionAccessPointPolicy recorded only in us-west-2"
    ]
    for case in CASES:
        if case.rule == "multi_region_access_point_policy":
            assert case.record["awsRegion"] == "us-west-2", case.id


def test_config_check_and_synth_warn_of_each_blind_spot(tmp_path: Path) -> None:
    """An account that does not watch us-west-2 is told, by name, what it cannot see; the demo's
    account watches it and gets no warning."""
    config = load_config()
    lacking = [account.name for account in config.accounts if "us-west-2" not in account.regions]
    warnings = blind_spot_warnings(config)
    assert [w.split(":", 1)[0] for w in warnings] == lacking
    assert all("PutMultiRegionAccessPointPolicy recorded only in us-west-2" in w for w in warnings)
    check = subprocess.run(
        [sys.executable, "-m", "stacks.config"], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert [line for line in check.stderr.splitlines() if line.startswith("warning: ")] == [
        f"warning: {w}" for w in warnings
    ]
    assert blind_spot_warnings(load_config(ROOT / "demo" / "detector.demo.toml")) == []
