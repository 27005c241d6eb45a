"""Several workers on a multi-GPU host: each on its own GPU, sized to it, its NVML metrics read
from that GPU. Simulated: torch sees fake devices and NVML is a fake module, since CPU-only CI
has neither (nothing here allocates on a GPU)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from model.restorer import load_restorer
from service.config import Settings
from tests.factories import save_tiny_checkpoint
from worker import metrics
from worker.runtime import Runtime

GiB = 2**30


@dataclass(frozen=True)
class FakeGpu:
    uuid: str  # as torch prints it, without NVML's "GPU-" prefix
    pci_domain_id: int
    pci_bus_id: int
    pci_device_id: int
    total_memory: int


# the host's four GPUs in NVML's (PCI) order; the process sees two of them, in another order
HOST = [
    FakeGpu("0000aaaa-0000-0000-0000-000000000000", 0, 0x1B, 0, 80 * GiB),
    FakeGpu("1111bbbb-0000-0000-0000-000000000000", 0, 0x3B, 0, 80 * GiB),
    FakeGpu("2222cccc-0000-0000-0000-000000000000", 0, 0x5E, 0, 24 * GiB),
    FakeGpu("3333dddd-0000-0000-0000-000000000000", 0, 0x86, 0, 40 * GiB),
]
VISIBLE = [HOST[3], HOST[2]]  # CUDA_VISIBLE_DEVICES=3,2: torch's cuda:0 is NVML's device 3


@pytest.fixture
def two_visible_gpus(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """torch sees VISIBLE; set_device calls are recorded and returned; TF32 flags restored."""
    chosen: list[int] = []
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(VISIBLE))
    monkeypatch.setattr(
        torch.cuda, "get_device_properties", lambda device: VISIBLE[torch.device(device).index]
    )
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: chosen.append(device.index))
    yield chosen
    torch.backends.cuda.matmul.allow_tf32 = matmul
    torch.backends.cudnn.allow_tf32 = cudnn


class FakeNvml(SimpleNamespace):
    """The few pynvml calls the metrics make, over HOST; lookups by index are refused."""

    class NVMLError(Exception):
        pass

    def __init__(self, by_uuid: bool = True) -> None:
        super().__init__()
        self.by_uuid = by_uuid
        self.lookups: list[str] = []

    def nvmlInit(self) -> None:
        pass

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        raise AssertionError("torch's index is not NVML's: look devices up by UUID or bus id")

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> int:
        self.lookups.append(uuid)
        for index, gpu in enumerate(HOST):
            if self.by_uuid and uuid == f"GPU-{gpu.uuid}":
                return index
        raise self.NVMLError("Not Found")

    def nvmlDeviceGetHandleByPciBusId(self, bus_id: str) -> int:
        self.lookups.append(bus_id)
        for index, gpu in enumerate(HOST):
            if bus_id == f"{gpu.pci_domain_id:08X}:{gpu.pci_bus_id:02X}:{gpu.pci_device_id:02X}.0":
                return index
        raise self.NVMLError("Not Found")

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(used=handle * GiB, total=HOST[handle].total_memory)


@pytest.mark.usefixtures("two_visible_gpus")
@pytest.mark.parametrize("by_uuid", [True, False])
def test_nvml_finds_torch_s_device_by_uuid_or_bus_id(by_uuid: bool) -> None:
    nvml = FakeNvml(by_uuid)
    for torch_index, nvml_index in ((0, 3), (1, 2)):
        handle = metrics.nvml_handle(nvml, torch.device("cuda", torch_index))  # type: ignore[arg-type]
        assert handle == nvml_index
    assert nvml.lookups[0] == f"GPU-{HOST[3].uuid}"
    if not by_uuid:
        assert "00000000:86:00.0" in nvml.lookups


@pytest.mark.usefixtures("two_visible_gpus")
def test_the_memory_gauges_read_the_worker_s_own_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml())
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device: 0)
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device: 0)
    collector = metrics.DeviceMemoryCollector(torch.device("cuda", 1))
    gauges = {family.name: family.samples[0].value for family in collector.collect()}
    assert gauges["swintormer_worker_device_memory_total_bytes"] == 24 * GiB  # NVML's device 2
    assert gauges["swintormer_worker_device_memory_used_bytes"] == 2 * GiB


@pytest.mark.parametrize(
    ("index", "cuda_devices", "expected"), [(0, [], 0), (1, [], 1), (2, [], 0), (0, [1], 1)]
)
def test_serve_s_workers_each_take_a_gpu_and_size_batches_to_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    two_visible_gpus: list[int],
    index: int,
    cuda_devices: list[int],
    expected: int,
) -> None:
    torch.manual_seed(0)
    checkpoint = save_tiny_checkpoint(tmp_path / "t.safetensors", with_prior=False)
    monkeypatch.setattr(  # the model stays on the CPU: nothing runs on the fake GPUs
        "worker.runtime.load_restorer", lambda path, device: load_restorer(path, device="cpu")
    )
    monkeypatch.setenv("SWINTORMER_WORKER_INDEX", str(index))  # what `serve` sets
    settings = Settings(checkpoint=checkpoint, device="cuda", cuda_devices=cuda_devices)
    runtime = Runtime(settings)
    runtime.setup()
    assert runtime.device == torch.device("cuda", expected)
    assert two_visible_gpus == [expected]
    assert runtime._device_memory_bytes() == VISIBLE[expected].total_memory
