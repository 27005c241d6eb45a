"""Dockerfile.gpu and .dockerignore: hadolint-clean, and the image they describe is the one the
deployment needs (multi-stage, CUDA torch by build argument, locked versions, non-root, a
health check). What it copies and runs from the code: test_references_to_code.py."""

from __future__ import annotations

import re

import pytest

from swintormer.cli import SUBCOMMANDS
from tests.deploy.checkers import ROOT, hadolint, run_checker
from tests.deploy.dockerfile import DOCKERFILE, DOCKERIGNORE, instructions, is_ignored


def test_hadolint_finds_nothing() -> None:
    result = run_checker(hadolint(), "--no-color", "--failure-threshold", "info", DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_builds_in_stages_and_runs_unprivileged_with_a_health_check() -> None:
    steps = instructions(DOCKERFILE.read_text())
    froms = [step for step in steps if step.keyword == "FROM"]
    assert len(froms) >= 2
    assert all(" AS " in step.arguments.upper() for step in froms)
    final = froms[-1].stage
    users = [step.arguments for step in steps if step.keyword == "USER" and step.stage == final]
    assert users, "the runtime stage sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), f"USER {users[-1]}: Kubernetes can verify only a numeric id"
    assert int(uid) > 0, "the runtime stage runs as root"
    health = [step.arguments for step in steps if step.keyword == "HEALTHCHECK"]
    assert len(health) == 1
    assert "CMD" in health[0]
    command = re.search(
        r'CMD \["swintormer", "(\w+)", "http://127\.0\.0\.1:(\d+)/healthz"\]', health[0]
    )
    assert command is not None, health[0]
    assert command[1] in {sub.name for sub in SUBCOMMANDS}


def test_torch_is_a_cuda_build_chosen_by_build_arguments() -> None:
    text = DOCKERFILE.read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, flags=re.MULTILINE))
    assert args.get("TORCH_CUDA", "").startswith("cu")
    assert re.search(
        r'pip install "torch==\$\{TORCH_VERSION\}" --index-url "[^"]+/\$\{TORCH_CUDA\}"', text
    )
    # the image runs the torch release the test suite runs (Makefile's CPU pin)
    makefile_pin = re.search(
        r"^TORCH_SPEC \?= torch==(\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE
    )
    assert makefile_pin is not None
    assert args["TORCH_VERSION"] == makefile_pin[1]
    # the host driver each CUDA line needs is documented where the argument is
    for line in ("cu128", "cu126", "cu130"):
        assert re.search(rf"#\s+{line}\b.*driver >= \d+", text), f"driver for {line} not documented"


def test_installs_the_lock_then_the_project_without_resolving_again() -> None:
    runs = [
        step.arguments for step in instructions(DOCKERFILE.read_text()) if step.keyword == "RUN"
    ]
    assert any("--requirement deploy/requirements.lock" in run for run in runs)
    assert any("pip install --no-deps ." in run and "pip check" in run for run in runs)


@pytest.mark.parametrize(
    "path",
    [
        "tests/unit/test_layering.py",
        "data/dpdd/x.png",
        "runs/lite/last.safetensors",
        ".venv/bin/python",
        ".git/HEAD",
        ".tools/node/package.json",
        "model/__pycache__/config.cpython-311.pyc",
        "bench/model_speed.py",
        ".env",
    ],
)
def test_dockerignore_keeps_caches_data_and_tests_out(path: str) -> None:
    assert is_ignored(path, DOCKERIGNORE.read_text())


def test_dockerignore_matching_follows_docker_rules() -> None:
    rules = "*\n!src/\n**/*.pyc\n"
    assert is_ignored("README.md", rules)
    assert not is_ignored("src/a/b.py", rules)
    assert is_ignored("src/a/b.pyc", rules)
    assert is_ignored("srcx/a.py", rules)
