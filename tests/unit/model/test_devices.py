"""Device names from settings and flags."""

from __future__ import annotations

import pytest
import torch

from model.devices import autocast, resolve_device


def test_auto_and_cpu() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")


def test_bad_names_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="not a torch device"):
        resolve_device("gpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda:0")


@pytest.mark.parametrize(
    ("precision", "dtype"), [("fp32", torch.float32), ("bf16", torch.bfloat16)]
)
def test_autocast_applies_the_precision_it_is_given(precision: str, dtype: torch.dtype) -> None:
    a = torch.ones(4, 4)
    with autocast(torch.device("cpu"), precision):
        assert (a @ a).dtype == dtype


def test_autocast_names_the_precisions_it_knows() -> None:
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, fp16, not 'fp8'"):
        autocast(torch.device("cpu"), "fp8")


@pytest.fixture
def three_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host whose process sees three GPUs (nothing is allocated on them)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)


@pytest.mark.usefixtures("three_gpus")
@pytest.mark.parametrize("name", ["auto", "cuda"])
def test_workers_take_the_gpus_in_turn(name: str) -> None:
    devices = [resolve_device(name, worker_index=i) for i in range(5)]
    assert [d.index for d in devices] == [0, 1, 2, 0, 1]
    assert {d.type for d in devices} == {"cuda"}


@pytest.mark.usefixtures("three_gpus")
def test_a_gpu_list_and_an_explicit_index() -> None:
    assert [resolve_device("cuda", i, [2, 0]).index for i in range(3)] == [2, 0, 2]
    assert resolve_device("cuda:1", worker_index=2) == torch.device("cuda", 1)
    assert resolve_device("cpu", worker_index=2) == torch.device("cpu")
    with pytest.raises(ValueError, match="sees 3 GPU"):
        resolve_device("auto", 0, [3])
    with pytest.raises(ValueError, match="sees 3 GPU"):
        resolve_device("cuda:5")
