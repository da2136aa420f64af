"""A faithful EventBridge pattern matcher (demo and tests): LocalStack's pure-Python rule engine.

moto's matcher never matches inside arrays of objects (``Statement[].Principal``,
``Grant[].Grantee.URI``) and accepts misspelled operators, so it cannot prove routing.
LocalStack's ``event_rule_engine`` flattens arrays of objects the way EventBridge does and
its compiler rejects invalid patterns (unknown operators, empty arrays, bad shapes).

One correction: LocalStack translates the wildcard ``*`` to ``.+`` (one or more
characters); EventBridge documents ``*`` as "zero or more characters". We use ``.*``
so negatives are judged by the looser, real rule. Escapes are not used by our patterns.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from functools import cache
from types import ModuleType
from typing import Any


def _load_engine() -> ModuleType:
    """LocalStack's ``event_rule_engine`` module, even without localstack's runtime extras.

    The engine itself needs only the stdlib and one exception class, but that class lives in
    ``localstack.aws.api``, whose package init imports ``rolo`` (a runtime extra that
    ``localstack-core`` alone does not install). When that import fails, load the engine
    file on its own with a stand-in for the exception's module.
    """
    try:
        from localstack.services.events import event_rule_engine

        return event_rule_engine
    except ImportError:
        pass
    spec = importlib.util.find_spec("localstack.services.events.event_rule_engine")
    if spec is None or spec.loader is None:
        raise ImportError("localstack-core is not installed (tests need its EventBridge rule engine)")
    stand_in = ModuleType("localstack.aws.api.events")
    stand_in.InvalidEventPatternException = type("InvalidEventPatternException", (ValueError,), {})  # type: ignore[attr-defined]
    saved = sys.modules.get(stand_in.__name__)
    sys.modules[stand_in.__name__] = stand_in
    try:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:  # leave no stand-in behind for code that imports localstack properly
        if saved is None:
            del sys.modules[stand_in.__name__]
        else:
            sys.modules[stand_in.__name__] = saved
    return module


_engine_module = _load_engine()
EventPatternCompiler = _engine_module.EventPatternCompiler
EventRuleEngine = _engine_module.EventRuleEngine
InvalidEventPatternException = _engine_module.InvalidEventPatternException

__all__ = ["InvalidEventPatternException", "compile_pattern", "matches"]


class _AwsWildcardEngine(EventRuleEngine):
    @staticmethod
    def _evaluate_wildcard(condition: str, value: Any) -> bool:
        if not isinstance(value, str):
            return False
        regex = ".*".join(re.escape(part) for part in condition.split("*"))
        return re.fullmatch(regex, value, flags=re.DOTALL) is not None


_ENGINE = _AwsWildcardEngine()


def compile_pattern(pattern: dict[str, Any] | str) -> dict[str, Any]:
    """Validate ``pattern`` as EventBridge would; raises ``InvalidEventPatternException``."""
    return EventPatternCompiler().compile_event_pattern(pattern)


@cache
def _compiled(pattern_json: str) -> dict[str, Any]:
    return compile_pattern(pattern_json)


def matches(pattern: dict[str, Any] | str, event: dict[str, Any]) -> bool:
    """Does the EventBridge ``event`` (a full envelope) match ``pattern``?"""
    text = pattern if isinstance(pattern, str) else json.dumps(pattern, sort_keys=True)
    return bool(_ENGINE.evaluate_pattern_on_event(_compiled(text), event))
