"""Fixtures of the unit tests: the released golden vectors (read once a session)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.reference import load_golden


@pytest.fixture(scope="session")
def golden() -> dict[str, np.ndarray]:
    """The released tiny network's state_dict ('param/<name>'), 'input' and 'output'."""
    return load_golden()
