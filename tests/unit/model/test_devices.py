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
