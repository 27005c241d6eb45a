"""bench/cpu_precision.py on a tiny checkpoint: both modes timed and compared, tables printed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench import cpu_precision
from tests.factories import save_tiny_checkpoint, tiny_network


def _bench_output(tmp_path: Path, capsys: pytest.CaptureFixture[str], *modes: str) -> str:
    """What the bench prints for a tiny checkpoint, 96 px image, one round and one case."""
    torch.manual_seed(0)
    checkpoint = save_tiny_checkpoint(tmp_path / "tiny.safetensors")
    threads = torch.get_num_threads()
    arguments = ["--checkpoints", str(checkpoint), "--repeats", "1", "--image-px", "96"]
    try:
        cpu_precision.main([*arguments, "--cases", "1", *(["--modes", *modes] if modes else [])])
    finally:
        torch.set_num_threads(threads)
    return capsys.readouterr().out


def _fidelity_rows(out: str, mode: str) -> list[str]:
    """The fidelity table's rows of `mode` (speed rows end in "x |")."""
    return [
        line for line in out.splitlines() if line.startswith(f"| {mode} | ") and "x |" not in line
    ]


@pytest.mark.slow
@pytest.mark.timeout(300)  # bf16 is emulated on AVX2 CPUs: ~40 s here beside training
def test_prints_speed_and_fidelity_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _bench_output(tmp_path, capsys)
    assert "| 4 x 256 px tiles | fp32 |" in out
    assert "| 96 x 96 image, tiled | bf16 |" in out
    assert "1.00x |" in out
    bf16_fidelity = _fidelity_rows(out, "bf16")
    assert len(bf16_fidelity) == 1
    versus_fp32 = float(bf16_fidelity[0].split("|")[2])
    assert versus_fp32 > 30  # bf16 output close to fp32's


def test_int8_network_quantises_the_linear_layers_it_can_and_stays_close() -> None:
    torch.manual_seed(0)
    network = tiny_network().eval()
    quantised = cpu_precision.int8_network(network)
    quantised_linears = [
        m for m in quantised.modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)
    ]
    float_linears = [
        name
        for name, m in quantised.named_modules()
        if type(m) is torch.nn.Linear and "cpb_mlp" not in name
    ]
    assert quantised_linears
    assert float_linears
    assert all(name.endswith("attn.project_out") for name in float_linears)
    assert all(type(m) is not torch.ao.nn.quantized.dynamic.Linear for m in network.modules())
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        error = (quantised(x) - network(x)).abs().max().item()
    assert 0 < error < 0.05


def test_int8_mode_is_timed_and_compared(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _bench_output(tmp_path, capsys, "fp32", "int8")
    assert "| 96 x 96 image, tiled | int8 |" in out
    int8_fidelity = _fidelity_rows(out, "int8")
    assert len(int8_fidelity) == 1
    assert float(int8_fidelity[0].split("|")[2]) > 30
