"""Fixtures for the model tests: a tiny configuration, a seeded RNG and one intra-op thread."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from model.config import SwintormerConfig, preset


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
    contending with other processes made training-step tests an order of magnitude slower.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
