"""Precision in the worker: what runs in reduced precision, and what never does.

CPU autocast applies the same casting rules as CUDA autocast, so a runtime on the CPU with a
reduced precision runs the code path a CUDA worker with `SWINTORMER_PRECISION=bf16` runs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from model.devices import is_tf32_enabled, set_tf32
from model.restorer import load_restorer
from model.tiling import TileSettings
from service.codec import DecodedImage
from service.config import Settings
from service.schemas import DeblurOptions
from tests.factories import save_tiny_checkpoint
from worker import runtime as runtime_module
from worker.runtime import RestoreRequest, Runtime


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_tiny_checkpoint(tmp_path_factory.mktemp("precision") / "t.safetensors")


def _runtime(checkpoint: Path, **settings: object) -> Runtime:
    runtime = Runtime(Settings(checkpoint=checkpoint, device="cpu", **settings))  # type: ignore[arg-type]
    runtime.setup()
    return runtime


def test_a_16_bit_input_runs_in_fp32_whatever_the_precision(checkpoint: Path) -> None:
    rgb = np.random.default_rng(0).random((72, 90, 3), dtype=np.float32)
    tiles = TileSettings(tile_px=64, overlap_px=16, batch=2)
    reference = _runtime(checkpoint, cpu_precision="fp32")(rgb, RestoreRequest(tiles=tiles, seed=1))
    runtime = _runtime(checkpoint, cpu_precision="fp32")
    runtime.precision = "bf16"  # as a CUDA worker with SWINTORMER_PRECISION=bf16
    # the bf16 job first, so the model's caches are first filled under autocast
    eight_bit = runtime(rgb, RestoreRequest(tiles=tiles, seed=1)).rgb
    sixteen_bit = runtime(rgb, RestoreRequest(tiles=tiles, seed=1, high_depth=True)).rgb
    assert not np.array_equal(eight_bit, reference.rgb)  # bf16 really ran for the 8-bit input
    np.testing.assert_array_equal(sixteen_bit, reference.rgb)


def test_a_job_request_carries_the_input_depth() -> None:
    runtime = Runtime(Settings())
    assert runtime.request_for(DeblurOptions(), high_depth=True).high_depth
    assert not runtime.request_for(DeblurOptions()).high_depth
    blank = np.zeros((1, 1, 3), np.float32)
    for mode, deep in (("I;16", True), ("RGB;16", True), ("RGBA;16", True), ("L", False)):
        assert DecodedImage(blank, None, mode, None).is_high_depth is deep
    assert not DecodedImage(blank, None, "RGB", None).is_high_depth


@pytest.fixture
def tf32_flags() -> Iterator[None]:
    """Restore torch's process-wide TF32 flags after the test."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    yield
    torch.backends.cuda.matmul.allow_tf32 = matmul
    torch.backends.cudnn.allow_tf32 = cudnn


def _simulated_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """`setup()` resolves a CUDA device, and the model stays on the CPU (nothing runs)."""
    monkeypatch.setattr("worker.runtime.resolve_device", lambda *_: torch.device("cuda", 0))
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)
    monkeypatch.setattr(
        "worker.runtime.load_restorer", lambda path, device: load_restorer(path, device="cpu")
    )


@pytest.mark.usefixtures("tf32_flags")
def test_tf32_is_turned_on_for_cuda_and_logged(
    checkpoint: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    set_tf32(False)
    _simulated_cuda(monkeypatch)
    with caplog.at_level(logging.INFO, logger="worker.runtime"):
        runtime = _runtime(checkpoint, precision="fp32")
    assert runtime.device.type == "cuda"
    assert torch.backends.cuda.matmul.allow_tf32
    assert torch.backends.cudnn.allow_tf32
    assert "TF32 for float32 matmuls and convolutions on" in caplog.text
    # a 16-bit input runs without it, and the switch comes back after the batch
    with runtime._precision(RestoreRequest(TileSettings(), high_depth=True)):
        assert not is_tf32_enabled()
    assert is_tf32_enabled()


@pytest.mark.usefixtures("tf32_flags")
def test_tf32_stays_off_when_the_setting_says_so(
    checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_tf32(True)
    _simulated_cuda(monkeypatch)
    _runtime(checkpoint, tf32=False)
    assert not is_tf32_enabled()


@pytest.mark.usefixtures("tf32_flags")
@pytest.mark.parametrize("before", [False, True])
def test_the_cpu_leaves_tf32_alone(checkpoint: Path, before: bool) -> None:
    set_tf32(before)
    runtime = _runtime(checkpoint, tf32=True)
    assert runtime.device.type == "cpu"
    assert is_tf32_enabled() is before


@pytest.mark.parametrize(
    ("setting", "native", "runs"),
    [
        ("auto", False, "fp32"),
        ("auto", True, "bf16"),
        ("fp32", True, "fp32"),
        ("fp32", False, "fp32"),
        ("bf16", False, "bf16"),
        ("bf16", True, "bf16"),
    ],
)
def test_the_cpu_precision_setting_is_applied_and_logged(
    checkpoint: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    setting: str,
    native: bool,
    runs: str,
) -> None:
    monkeypatch.setattr(runtime_module, "cpu_has_native_bf16", lambda: native)
    with caplog.at_level(logging.INFO, logger="worker.runtime"):
        runtime = _runtime(checkpoint, cpu_precision=setting)
    assert runtime.precision == runs
    capability = torch.backends.cpu.get_cpu_capability()
    assert f"precision {runs} on the CPU (SWINTORMER_CPU_PRECISION={setting}" in caplog.text
    assert f"CPU capability {capability}, native bf16 {'yes' if native else 'no'})" in caplog.text


def test_native_bf16_follows_the_cpu_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    for avx512_bf16, amx, expected in [
        (False, False, False),
        (True, False, True),
        (False, True, True),
    ]:
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v)
        assert runtime_module.cpu_has_native_bf16() is expected


def test_an_unknown_cpu_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="cpu_precision must be auto, fp32 or bf16"):
        runtime_module.choose_cpu_precision("int8", native_bf16=True)


def test_bf16_on_the_cpu_runs_under_autocast_and_keeps_the_output_close(checkpoint: Path) -> None:
    rgb = np.random.default_rng(2).random((64, 64, 3), dtype=np.float32)
    request = RestoreRequest(tiles=TileSettings(tile_px=64, overlap_px=0, batch=1), seed=0)
    fp32 = _runtime(checkpoint, cpu_precision="fp32")(rgb, request).rgb
    bf16_runtime = _runtime(checkpoint, cpu_precision="bf16")
    dtypes: list[torch.dtype] = []
    assert bf16_runtime.restorer is not None
    convolution = next(
        m for m in bf16_runtime.restorer.network.modules() if isinstance(m, torch.nn.Conv2d)
    )
    handle = convolution.register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
    bf16 = bf16_runtime(rgb, request).rgb
    handle.remove()
    assert set(dtypes) == {torch.bfloat16}
    assert not np.array_equal(bf16, fp32)
    assert np.abs(bf16 - fp32).max() < 0.05
