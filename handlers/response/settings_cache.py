"""A function's settings, read from the environment once per container.

The response, review and sweep functions each cache their settings the same way: loaded on first
use, kept for the container's life, forgotten on demand (tests change the environment).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

from handlers.response.function_env import RUNTIME_REGION

T = TypeVar("T")


class SettingsCache(Generic[T]):
    """Settings loaded from ``os.environ`` on first use; a bad setting raises every time (nothing is kept)."""

    def __init__(self, load: Callable[[Mapping[str, str]], T]) -> None:
        self._load = load
        self._value: T | None = None

    def get(self) -> T:
        """The cached settings, loading them from the environment the first time."""
        if self._value is None:
            self._value = self._load(os.environ)
        return self._value

    def reset(self) -> None:
        """Forget the cached settings so the next :meth:`get` reads the environment again."""
        self._value = None


def function_region() -> str | None:
    """The function's own region (its idempotency table lives there), or None outside Lambda."""
    return os.environ.get(RUNTIME_REGION) or None
