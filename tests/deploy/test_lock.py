"""deploy/requirements.lock, the pinned runtime set Dockerfile.gpu installs: it covers every
runtime dependency of the installed project (a new dependency without `make lock` fails here),
holds nothing else, leaves torch to the CUDA index, and satisfies the project's own ranges."""

from __future__ import annotations

import importlib.metadata

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from swintormer.lock import INSTALLED_SEPARATELY, PROJECT, parse_lock, render_lock, runtime_pins
from tests.deploy.checkers import ROOT

LOCK = ROOT / "deploy" / "requirements.lock"


def test_lock_pins_exactly_the_runtime_dependencies() -> None:
    locked = set(parse_lock(LOCK.read_text()))
    needed = set(runtime_pins())
    assert needed - locked == set(), "unpinned runtime dependencies: run `make lock`"
    assert locked - needed == set(), "pins nothing needs any more: run `make lock`"
    assert not locked & INSTALLED_SEPARATELY


def test_locked_versions_satisfy_the_project_ranges() -> None:
    locked = parse_lock(LOCK.read_text())
    for line in importlib.metadata.requires(PROJECT) or []:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        if requirement.marker is not None or name in INSTALLED_SEPARATELY:
            continue
        assert requirement.specifier.contains(locked[name], prereleases=True), (
            f"{name}=={locked[name]} is outside {requirement.specifier}: run `make lock`"
        )


def test_rendered_lock_parses_back() -> None:
    pins = runtime_pins()
    assert parse_lock(render_lock(pins)) == pins
    assert "torch" not in pins
    assert "fastapi" in pins


@pytest.mark.parametrize("line", ["fastapi>=0.1", "numpy", "redis==5; python_version<'3'"])
def test_parse_lock_refuses_anything_but_exact_pins(line: str) -> None:
    with pytest.raises(ValueError, match="line 1"):
        parse_lock(line + "\n")
