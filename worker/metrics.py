"""Every Prometheus metric a worker exports, on its own port (`worker_metrics_port`).

One worker process per GPU, one container each: so no multiprocess mode, each worker serves
its own registry. Names carry the `swintormer_worker_` prefix and base units (seconds,
bytes, pixels). Memory gauges are read at scrape time by `DeviceMemoryCollector`; on a
CPU-only host the torch gauges read 0 and the NVML ones are absent. Reference:
docs/metrics.md.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from types import ModuleType

import torch
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)

# Seconds; jobs on big images run for minutes, so the buckets do too.
LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200)
JOB_OUTCOMES = ("ok", "failed", "invalid", "timeout", "oom", "canceled")

JOBS = Counter(
    "swintormer_worker_jobs",
    "Jobs finished by this worker, by outcome (ok, failed, invalid, timeout, oom, canceled)",
    ["outcome"],
    registry=REGISTRY,
)
JOB_DURATION = Histogram(
    "swintormer_worker_job_duration_seconds",
    "Wall time of a job in the worker: fetch, decode, inference, encode, store",
    ["outcome"],
    buckets=LATENCY_BUCKETS_S,
    registry=REGISTRY,
)
INFERENCE_DURATION = Histogram(
    "swintormer_worker_inference_duration_seconds",
    "Tiled network + prior time of a successful job",
    buckets=LATENCY_BUCKETS_S,
    registry=REGISTRY,
)
QUEUE_WAIT = Histogram(
    "swintormer_worker_queue_wait_seconds",
    "Time from enqueue to the start of the job's current attempt",
    buckets=LATENCY_BUCKETS_S,
    registry=REGISTRY,
)
PIXELS = Counter("swintormer_worker_pixels", "Pixels restored (successful jobs)", registry=REGISTRY)
TILES = Counter("swintormer_worker_tiles", "Tiles restored (successful jobs)", registry=REGISTRY)
OOM_RETRIES = Counter(
    "swintormer_worker_oom_retries",
    "CUDA out-of-memory halvings of the tile batch or the tile edge (also of jobs that failed)",
    registry=REGISTRY,
)
MODEL_LOAD = Gauge(
    "swintormer_worker_model_load_seconds",
    "Time to load the checkpoint onto the device at start-up",
    registry=REGISTRY,
)
WARMUP = Gauge(
    "swintormer_worker_warmup_seconds",
    "Time of the warm-up at start-up (a tile; on CUDA with automatic batches, their sizing)",
    registry=REGISTRY,
)
TILE_BATCH = Gauge(
    "swintormer_worker_tile_batch",
    "Tiles per forward pass at the configured tile edge (automatic: sized at warm-up)",
    registry=REGISTRY,
)
MODEL_READY = Gauge(
    "swintormer_worker_model_ready",
    "1 once the model is loaded and warm and the worker takes jobs, else 0",
    registry=REGISTRY,
)
JOB_VRAM_PEAK = Gauge(
    "swintormer_worker_job_vram_peak_bytes",
    "torch.cuda.max_memory_allocated during the last job (reset per job; 0 on CPU)",
    registry=REGISTRY,
)
MODEL_INFO = Info(
    "swintormer_worker_model", "Checkpoint and device this worker serves", registry=REGISTRY
)


class DeviceMemoryCollector(Collector):
    """Memory gauges read at scrape time: torch's allocator, and NVML for the whole device."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._nvml_handle: object | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        allocated = GaugeMetricFamily(
            "swintormer_worker_vram_allocated_bytes",
            "torch.cuda.memory_allocated of this process (0 on CPU)",
        )
        reserved = GaugeMetricFamily(
            "swintormer_worker_vram_reserved_bytes",
            "torch.cuda.memory_reserved (held by the caching allocator) of this process",
        )
        is_cuda = self.device.type == "cuda" and torch.cuda.is_available()
        allocated.add_metric([], float(torch.cuda.memory_allocated(self.device)) if is_cuda else 0)
        reserved.add_metric([], float(torch.cuda.memory_reserved(self.device)) if is_cuda else 0)
        yield allocated
        yield reserved
        if is_cuda:
            yield from self._nvml_memory()

    def _nvml_memory(self) -> Iterator[GaugeMetricFamily]:
        try:
            import pynvml  # nvidia-ml-py, present on GPU images only
        except ImportError:
            return
        try:
            if self._nvml_handle is None:
                pynvml.nvmlInit()
                self._nvml_handle = nvml_handle(pynvml, self.device)
            info = pynvml.nvmlDeviceGetMemoryInfo(self._nvml_handle)
        except pynvml.NVMLError as error:
            log.debug("NVML unavailable: %s", error)
            return
        used = GaugeMetricFamily(
            "swintormer_worker_device_memory_used_bytes",
            "Device memory in use (NVML, all processes)",
        )
        total = GaugeMetricFamily(
            "swintormer_worker_device_memory_total_bytes", "Device memory size (NVML)"
        )
        used.add_metric([], float(info.used))
        total.add_metric([], float(info.total))
        yield used
        yield total


def nvml_handle(pynvml: ModuleType, device: torch.device) -> object:
    """NVML's handle of torch's CUDA `device`, found by the device's UUID (else its PCI bus id).

    Not by index: torch numbers the devices CUDA_VISIBLE_DEVICES leaves visible (and orders
    them fastest first unless CUDA_DEVICE_ORDER=PCI_BUS_ID), NVML numbers every device on the
    host in PCI order, so `cuda:0` may well be NVML's device 3.

    Raises:
        pynvml.NVMLError: NVML knows no device with that UUID or bus id.
    """
    properties = torch.cuda.get_device_properties(device)
    uuid = str(properties.uuid)
    names = [uuid] if uuid.startswith(("GPU-", "MIG-")) else [f"GPU-{uuid}", f"MIG-{uuid}"]
    missing: Exception | None = None
    for name in names:
        try:
            return pynvml.nvmlDeviceGetHandleByUUID(name)
        except pynvml.NVMLError as error:
            missing = error
    # torch's stubs do not list the PCI fields its CUDA builds have
    pci = [getattr(properties, f"pci_{part}_id", None) for part in ("domain", "bus", "device")]
    if None in pci:
        assert missing is not None
        raise missing
    domain, bus, slot = pci
    return pynvml.nvmlDeviceGetHandleByPciBusId(f"{domain:08X}:{bus:02X}:{slot:02X}.0")


def reset_job_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def record_job_peak(device: torch.device) -> None:
    if device.type == "cuda":
        JOB_VRAM_PEAK.set(torch.cuda.max_memory_allocated(device))


def serve(port: int, device: torch.device, host: str = "127.0.0.1") -> None:
    """Register the memory collector and serve `REGISTRY` on `host:port` (port 0: not served).

    Raises:
        OSError: the port is taken.
    """
    REGISTRY.register(DeviceMemoryCollector(device))
    for outcome in JOB_OUTCOMES:  # export zeros, so rates exist before the first failure
        JOBS.labels(outcome)
    if port:
        start_http_server(port, addr=host, registry=REGISTRY)
        log.info("worker metrics on %s:%d/metrics", host, port)
