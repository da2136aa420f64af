"""The stack as deployed, read back from the account: its rules, their targets and the function.

Routing is decided by what EventBridge holds, not by ``handlers/detection/event_patterns.py``: the
rules are listed and described in every watched region and matched with the faithful
pattern engine. A rule whose target is another region's event bus forwards the event
there (the event keeps its own region), where that bus's rules match it again; a rule
whose target is the function delivers it. Only reads: the same code serves the
emulator and the read-only pass against a real account.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from demo.pattern_engine import matches

MAX_FORWARDS = 2  # EventBridge never forwards a forwarded event further than this in our stack


class ClientFactory(Protocol):
    def client(self, service: str, region: str) -> Any: ...


@dataclass(frozen=True)
class Target:
    """One target of a rule: a function, a bus in another region, or anything else."""

    arn: str
    role_arn: str | None = None

    @property
    def kind(self) -> str:
        service = self.arn.split(":")[2] if self.arn.count(":") >= 5 else ""
        if service == "lambda":
            return "function"
        if service == "events" and ":event-bus/" in self.arn:
            return "bus"
        return service or "unknown"

    @property
    def region(self) -> str:
        return self.arn.split(":")[3]


@dataclass(frozen=True)
class DeployedRule:
    """An EventBridge rule as the account holds it."""

    name: str
    region: str
    pattern: str
    enabled: bool
    targets: tuple[Target, ...]

    @property
    def route(self) -> str:
        """The short name shown in the table: the part after ``-s3-exposure-``."""
        return self.name.split("-s3-exposure-", 1)[-1]


@dataclass(frozen=True)
class DeployedFunction:
    """The response function's configuration as the account holds it."""

    name: str
    arn: str
    region: str
    role_arn: str
    handler: str
    timeout_seconds: int
    code_sha256: str
    environment: dict[str, str] = field(default_factory=dict)


def read_rules(clients: ClientFactory, regions: tuple[str, ...], name_prefix: str) -> list[DeployedRule]:
    """Every rule named ``name_prefix*`` in ``regions``, with its pattern and targets."""
    rules: list[DeployedRule] = []
    for region in regions:
        events = clients.client("events", region)
        token: str | None = None
        while True:
            page = events.list_rules(NamePrefix=name_prefix, **({"NextToken": token} if token else {}))
            for summary in page.get("Rules", []):
                described = events.describe_rule(Name=summary["Name"])
                pattern = described.get("EventPattern")
                if not pattern:
                    continue  # a scheduled rule: never matches events
                targets = tuple(
                    Target(t["Arn"], t.get("RoleArn"))
                    for t in events.list_targets_by_rule(Rule=summary["Name"]).get("Targets", [])
                )
                rules.append(
                    DeployedRule(
                        summary["Name"], region, pattern, described.get("State") == "ENABLED", targets
                    )
                )
            token = page.get("NextToken")
            if not token:
                break
    return rules


def function_arns(rules: list[DeployedRule]) -> list[str]:
    """The functions the rules deliver to (normally exactly one)."""
    return sorted({t.arn for rule in rules for t in rule.targets if t.kind == "function"})


def read_function(clients: ClientFactory, arn: str) -> DeployedFunction:
    """The function's configuration, environment included."""
    region = arn.split(":")[3]
    config = clients.client("lambda", region).get_function_configuration(FunctionName=arn)
    return DeployedFunction(
        name=config["FunctionName"],
        arn=config["FunctionArn"],
        region=region,
        role_arn=config["Role"],
        handler=config["Handler"],
        timeout_seconds=int(config.get("Timeout", 3)),
        code_sha256=config.get("CodeSha256", ""),
        environment=dict((config.get("Environment") or {}).get("Variables") or {}),
    )


def route(event: dict[str, Any], rules: list[DeployedRule], function_arn: str) -> list[str]:
    """The rules (``route`` names) that deliver ``event`` to the function, following bus forwards."""
    delivered: list[str] = []
    _route(event, event.get("region", ""), rules, function_arn, delivered, depth=0)
    return delivered


def _route(
    event: dict[str, Any],
    bus_region: str,
    rules: list[DeployedRule],
    function_arn: str,
    delivered: list[str],
    depth: int,
) -> None:
    for rule in rules:
        if rule.region != bus_region or not rule.enabled or not matches(rule.pattern, event):
            continue
        for target in rule.targets:
            if target.arn == function_arn:
                delivered.append(rule.route if depth == 0 else f"{rule.route} via {event.get('region')}")
            elif target.kind == "bus" and target.region != bus_region and depth < MAX_FORWARDS:
                _route(event, target.region, rules, function_arn, delivered, depth + 1)
