"""Fixtures for the model tests: the shared reference folder and a tiny configuration."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from model.config import SwintormerConfig, preset

REPO_ROOT = Path(__file__).resolve().parents[3]
# the repository is checked out next to the team's `shared/` folder (design docs, references)
REFERENCE_DIR = REPO_ROOT.parent / "shared" / "reference"
# the constructor arguments of the released tiny network in released_tiny_golden.json
GOLDEN_CONFIG = SwintormerConfig(
    in_channels=6,
    dim=8,
    num_blocks=(1, 2, 1, 2),
    num_refinement_blocks=2,
    heads=(1, 2, 2, 4),
    ffn_factor=2.66,
    bias=False,
    window_size=4,
)


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """`../shared/reference` beside the repository; tests that need it skip without it."""
    if not REFERENCE_DIR.is_dir():
        pytest.skip(f"{REFERENCE_DIR} is absent: the repository is not next to shared/")
    return REFERENCE_DIR


@pytest.fixture(scope="session")
def golden(reference_dir: Path) -> dict[str, np.ndarray]:
    """The released tiny network's state_dict ('param/<name>'), 'input' and 'output'."""
    with np.load(reference_dir / "released_tiny_golden.npz") as arrays:
        return {name: arrays[name] for name in arrays.files}


@pytest.fixture
def tiny_config() -> SwintormerConfig:
    """The `tiny` preset: dim 8, window 4, inputs padded to multiples of 64."""
    return preset("tiny")


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Run a test's tiny tensors on one intra-op thread.

    Tiny models gain nothing from parallel kernels, and on a shared 2-core machine two threads
    contending with other processes made training-step tests 10-25x slower (measured: 73 ms vs
    0.7-2 s per stage-1 step of the test network).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
