"""Types the HTTP tests share (fixtures live in conftest.py)."""

from __future__ import annotations

from collections.abc import Callable

from starlette.testclient import TestClient

MakeClient = Callable[..., TestClient]
"""`make_client(**settings_overrides)`: a client for a gateway on the private Redis."""
