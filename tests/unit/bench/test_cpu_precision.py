"""bench/cpu_precision.py on a tiny checkpoint: both modes timed and compared, tables printed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench import cpu_precision
from tests.factories import save_tiny_checkpoint


@pytest.mark.slow
@pytest.mark.timeout(300)  # bf16 is emulated on AVX2 CPUs: ~40 s here beside training
def test_prints_speed_and_fidelity_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(0)
    checkpoint = save_tiny_checkpoint(tmp_path / "tiny.safetensors")
    threads = torch.get_num_threads()
    try:
        cpu_precision.main(
            ["--checkpoints", str(checkpoint), "--repeats", "1", "--image-px", "96", "--cases", "1"]
        )
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "| 4 x 256 px tiles | fp32 |" in out
    assert "| 96 x 96 image, tiled | bf16 |" in out
    assert "1.00x |" in out
    bf16_fidelity = [
        line for line in out.splitlines() if line.startswith("| bf16 | ") and "x |" not in line
    ]
    assert len(bf16_fidelity) == 1
    versus_fp32 = float(bf16_fidelity[0].split("|")[2])
    assert versus_fp32 > 30  # bf16 output close to fp32's
