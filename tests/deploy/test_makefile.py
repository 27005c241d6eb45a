"""The Makefile's torch install: the CPU build from PyTorch's CPU index where there is no NVIDIA
GPU (the default index when that one cannot be reached), and a reinstall whenever TORCH_SPEC
changes. Read from `make -n` (what make would run), with PATH deciding whether nvidia-smi exists.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.deploy.checkers import ROOT

CPU_INDEX = "--index-url https://download.pytorch.org/whl/cpu"


def _dry_run(venv: Path, path: str, *arguments: str) -> str:
    """What `make setup` would run with this venv and PATH."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    result = subprocess.run(
        [make, "-n", "-C", str(ROOT), "setup", f"VENV={venv}", *arguments],
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def _installed(venv: Path, spec: str) -> None:
    """A venv whose torch was installed from `spec`, and the project after it."""
    (venv / "bin").mkdir(parents=True)
    (venv / ".torch-spec").write_text(spec + "\n")
    time.sleep(0.01)
    (venv / ".installed").touch()


@pytest.fixture
def without_nvidia_smi(tmp_path: Path) -> str:
    """A PATH with the shell tools make needs and no nvidia-smi."""
    tools = tmp_path / "tools"
    tools.mkdir()
    for name in ("sh", "cat", "test", "echo", "true"):
        found = shutil.which(name)
        if found:
            (tools / name).symlink_to(found)
    return str(tools)


def test_a_machine_without_a_gpu_tries_the_cpu_index_then_the_default(
    tmp_path: Path, without_nvidia_smi: str
) -> None:
    commands = _dry_run(tmp_path / "venv", without_nvidia_smi)
    [first] = [line for line in commands.splitlines() if "install --quiet --timeout" in line]
    assert f"--timeout 5 --retries 0 {CPU_INDEX} torch==2.13.0 ||" in first
    assert first.rstrip().endswith("install --quiet torch==2.13.0; }")  # the fallback


def test_a_gpu_host_takes_the_spec_as_given(tmp_path: Path, without_nvidia_smi: str) -> None:
    fake = tmp_path / "gpu"
    fake.mkdir()
    (fake / "nvidia-smi").write_text("#!/bin/sh\n")
    (fake / "nvidia-smi").chmod(0o755)
    commands = _dry_run(tmp_path / "venv", f"{fake}:{without_nvidia_smi}")
    assert CPU_INDEX not in commands
    assert "pip install --quiet torch==2.13.0\n" in commands


def test_a_changed_torch_spec_reinstalls_torch(tmp_path: Path, without_nvidia_smi: str) -> None:
    venv = tmp_path / "venv"
    _installed(venv, "torch==2.13.0")
    assert "pip" not in _dry_run(venv, without_nvidia_smi)  # up to date: nothing to do
    cuda = "torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
    commands = _dry_run(venv, without_nvidia_smi, f"TORCH_SPEC={cuda}")
    assert "uninstall --quiet --yes torch" in commands
    assert f"pip install --quiet {cuda}\n" in commands  # its own index, no CPU attempt
    assert f"echo '{cuda}' >" in commands
    assert "-e '.[dev,gpu]'" in commands
