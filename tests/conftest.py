"""Shared fixtures. Dataset loading lives in ``demo/dataset_loader.py`` so plain imports work too.

The repo root and ``tests/`` are on ``sys.path`` through ``pythonpath`` in pyproject.toml.
"""

from __future__ import annotations

import copy

import pytest

from demo.dataset_loader import Case, load_cases


@pytest.fixture(scope="session")
def dataset_cases() -> list[Case]:
    """Every labelled case in ``dataset/``."""
    return load_cases()


@pytest.fixture
def case_record():
    """Look up a case by id and return a deep copy of its record, safe to mutate."""
    by_id = {case.id: case for case in load_cases()}

    def get(case_id: str) -> dict:
        return copy.deepcopy(by_id[case_id].record)

    return get
