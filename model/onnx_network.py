"""The Swintormer network through ONNX Runtime, for CPU workers.

On the 2-core CPU machine ONNX Runtime runs the `lite` network on a batch of four 256 px tiles
(the CPU worker's batch) 2.2x faster than eager PyTorch at the same outputs (max difference
6e-7; `python -m bench.cpu_engine`). The network's graph is fixed per tile edge: `torch.onnx`
traces the window partitioning, the padding to whole windows and the FiLM conditioning for one
(H, W), so an `OnnxNetwork` serves exactly that tile edge with any batch size, and the caller
(`Restorer.run`) falls back to PyTorch for anything else (images smaller than a tile, a job
asking for another tile size). The front end's FFTs and the prior's seeded sampling stay in
PyTorch: they are a small share of the time and would not export as they are.

Exporting takes about a minute for `lite` on one thread, so the exported file is cached on disk
under a key made of the weights, the architecture, the tile edge and the library versions: a
restarted worker loads it in a second. Every build checks the session against PyTorch on one
tile before it is used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from model.atomic_files import atomic_path
from model.swintormer import Swintormer

log = logging.getLogger(__name__)

OPSET = 17
# largest |ONNX - PyTorch| accepted on the check tile (float32 reorderings give ~1e-6)
CHECK_TOLERANCE = 1e-3


class EngineUnavailableError(RuntimeError):
    """ONNX Runtime is not installed, or the network would not export or check out."""


@dataclass(frozen=True)
class ExportShape:
    """What one exported graph accepts: (any batch, channels, edge, edge) images, with or
    without the prior's latent (any batch, cond_channels, edge_pad / 16, edge_pad / 16)."""

    channels: int
    edge: int
    with_cond: bool


def onnxruntime_available() -> bool:
    """Whether `onnxruntime` and `onnx` can be imported here."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def cache_key(network: Swintormer, shape: ExportShape) -> str:
    """Hex digest of the weights, the architecture, the export shape and the library versions."""
    import onnxruntime

    digest = hashlib.sha256()
    header = {
        "config": network.config.to_dict(),
        "shape": [shape.channels, shape.edge, shape.with_cond],
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "opset": OPSET,
    }
    digest.update(json.dumps(header, sort_keys=True).encode())
    for name, tensor in sorted(network.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:32]


def _example(network: Swintormer, shape: ExportShape, batch: int) -> tuple[Tensor, Tensor | None]:
    """Random inputs of `shape` (float32 on the CPU), seeded: (image, cond or None)."""
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(batch, shape.channels, shape.edge, shape.edge, generator=generator)
    if not shape.with_cond:
        return image, None
    grid = network.latent_grid(shape.edge, shape.edge)
    cond = torch.randn(batch, network.config.cond_channels, *grid, generator=generator)
    return image, cond


def export(network: Swintormer, shape: ExportShape, path: Path) -> None:
    """Write `network` as an ONNX graph for `shape` to `path` (atomically)."""
    image, cond = _example(network, shape, batch=2)
    inputs: tuple[Tensor, ...] = (image,) if cond is None else (image, cond)
    names = ["image"] if cond is None else ["image", "cond"]
    dynamic = {name: {0: "batch"} for name in [*names, "restored"]}

    class _Forward(torch.nn.Module):
        """The network with `cond` as a positional input (what the exporter traces)."""

        def __init__(self) -> None:
            super().__init__()
            self.network = network

        def forward(self, image: Tensor, cond: Tensor | None = None) -> Tensor:
            return self.network(image, cond=cond)

    with atomic_path(path) as partial, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on Python-side shape arithmetic
        torch.onnx.export(
            _Forward().eval(),
            inputs,
            str(partial),
            input_names=names,
            output_names=["restored"],
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,
        )


class OnnxNetwork:
    """An ONNX Runtime session standing in for `network` on tiles of one shape.

    Build with `OnnxNetwork.load` (exports on a cache miss, checks against PyTorch).
    """

    def __init__(self, session: object, shape: ExportShape, path: Path) -> None:
        self.session = session
        self.shape = shape
        self.path = path

    @classmethod
    def load(
        cls, network: Swintormer, shape: ExportShape, cache_dir: Path, threads: int
    ) -> OnnxNetwork:
        """The session for `network` on `shape`, exported into `cache_dir` on first use.

        Raises:
            EngineUnavailableError: no ONNX Runtime here, the export failed, or the session's
                output differs from PyTorch's by more than `CHECK_TOLERANCE` on a check tile.
        """
        if not onnxruntime_available():
            raise EngineUnavailableError("onnxruntime (and onnx) are not installed")
        import onnxruntime

        network = network.eval()
        path = cache_dir / f"network-{cache_key(network, shape)}.onnx"
        if not path.exists():
            log.info("exporting the network for %dpx tiles to %s", shape.edge, path)
            cache_dir.mkdir(parents=True, exist_ok=True)
            try:
                export(network, shape, path)
            except Exception as error:  # the exporter raises many types; all mean "no graph"
                raise EngineUnavailableError(f"the network did not export: {error}") from error
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # a truncated or foreign file: export again next time
            path.unlink(missing_ok=True)
            raise EngineUnavailableError(f"cannot load {path}: {error}") from error
        engine = cls(session, shape, path)
        engine.check(network)
        return engine

    def check(self, network: Swintormer) -> float:
        """Largest |ONNX - PyTorch| on a seeded check batch; raises above the tolerance."""
        image, cond = _example(network, self.shape, batch=1)
        with torch.inference_mode():
            expected = network(image, cond=cond)
        difference = float((self(image, cond) - expected).abs().max())
        if not difference <= CHECK_TOLERANCE:
            raise EngineUnavailableError(
                f"ONNX Runtime differs from PyTorch by {difference:.2e} (> {CHECK_TOLERANCE})"
            )
        return difference

    def accepts(self, image: Tensor, cond: Tensor | None) -> bool:
        """Whether this graph can run `network(image, cond=cond)`: float32 CPU tensors of the
        exported shape, with a latent exactly when the graph takes one."""
        shape = self.shape
        return (
            image.device.type == "cpu"
            and image.dtype == torch.float32
            and not image.requires_grad
            and image.dim() == 4
            and tuple(image.shape[1:]) == (shape.channels, shape.edge, shape.edge)
            and (cond is not None) == shape.with_cond
            and (cond is None or (cond.dtype == torch.float32 and cond.device.type == "cpu"))
        )

    def __call__(self, image: Tensor, cond: Tensor | None) -> Tensor:
        """`network(image, cond=cond)` through the session: (B, 3, edge, edge) float32."""
        feed = {"image": _numpy(image)}
        if cond is not None:
            feed["cond"] = _numpy(cond)
        (restored,) = self.session.run(["restored"], feed)  # type: ignore[attr-defined]
        return torch.from_numpy(restored)


def _numpy(tensor: Tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().cpu().numpy(), dtype=np.float32)

