"""The pinned runtime requirements of the installed project: the lock that Dockerfile.gpu installs.

The image installs torch from the PyTorch index of its CUDA line (a build argument), then every
other runtime dependency at exactly the version pinned here, then the project itself without
dependencies. The pins are read from the environment the checks ran in (`make lock`), so the
image runs the versions that were tested. Environment markers are evaluated for the interpreter
that writes the lock; the image uses the same Python minor version on Linux.
"""

from __future__ import annotations

import importlib.metadata
from collections import deque

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

PROJECT = "swintormer"
# Installed by the image from the PyTorch index of the chosen CUDA line, never from this lock;
# packages that only torch needs come with it from that index.
INSTALLED_SEPARATELY = frozenset({canonicalize_name("torch")})


class LockError(RuntimeError):
    """The environment cannot produce a lock (a runtime dependency is not installed)."""


def _requirements_of(
    distribution: importlib.metadata.Distribution, extras: frozenset[str]
) -> list[Requirement]:
    """The requirements `distribution` declares for the given extras, markers evaluated here."""
    wanted = []
    for line in distribution.requires or []:
        requirement = Requirement(line)
        marker = requirement.marker
        if marker is None or any(marker.evaluate({"extra": extra}) for extra in {"", *extras}):
            wanted.append(requirement)
    return wanted


def runtime_pins(project: str = PROJECT) -> dict[NormalizedName, str]:
    """Every installed distribution `project` needs at run time (no extras), with its version.

    Returns:
        Canonical distribution name -> installed version, without the project itself and without
        the packages in `INSTALLED_SEPARATELY` (whose own dependencies are not followed).

    Raises:
        LockError: a required distribution is not installed.
    """
    pins: dict[NormalizedName, str] = {}
    pending: deque[tuple[str, frozenset[str], str]] = deque([(project, frozenset(), "")])
    seen: set[tuple[NormalizedName, frozenset[str]]] = set()
    while pending:
        name, extras, wanted_by = pending.popleft()
        key = (canonicalize_name(name), extras)
        if key in seen:
            continue
        seen.add(key)
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError as error:
            raise LockError(f"{name} (required by {wanted_by}) is not installed") from error
        if key[0] != canonicalize_name(project):
            pins[key[0]] = distribution.version
        for requirement in _requirements_of(distribution, extras):
            if canonicalize_name(requirement.name) not in INSTALLED_SEPARATELY:
                pending.append((requirement.name, frozenset(requirement.extras), name))
    return dict(sorted(pins.items()))


def render_lock(pins: dict[NormalizedName, str]) -> str:
    """The lock file's text: a header saying how it was made, then one `name==version` a line."""
    header = (
        f"# Runtime dependencies of {PROJECT}, pinned from a tested environment by `make lock`.\n"
        "# Dockerfile.gpu installs torch from the PyTorch index first, then this file, then the\n"
        "# project with --no-deps. Do not edit by hand.\n"
    )
    return header + "".join(f"{name}=={version}\n" for name, version in pins.items())


def parse_lock(text: str) -> dict[NormalizedName, str]:
    """The pins of a lock file's text (comments and blank lines ignored).

    Raises:
        ValueError: a line is not an exact `name==version` pin.
    """
    pins: dict[NormalizedName, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        specifiers = list(requirement.specifier)
        if len(specifiers) != 1 or specifiers[0].operator != "==" or requirement.marker:
            raise ValueError(f"line {number}: {raw!r} is not an exact 'name==version' pin")
        pins[canonicalize_name(requirement.name)] = specifiers[0].version
    return pins
