"""What the HTTP tests share besides fixtures: the type of the `make_client` fixture."""

from __future__ import annotations

from collections.abc import Callable

from starlette.testclient import TestClient

# make_client(**settings_overrides) -> a client of a gateway on the session's private Redis
MakeClient = Callable[..., TestClient]
