"""`swintormer deblur` and the service return the same pixels for the same file and seed.

The service side is the real path: `POST /deblur` on the gateway, an in-process RQ worker
(`burst=True`) on the session's private Redis running `worker.tasks.deblur`, then
`GET /jobs/{id}/result`. The local side is the command. Both restore with a tiny network and
prior (seeded, so a wrong seed or tiling would show) and encode through `service.codec`.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
import torch
from PIL import Image
from rq.serializers import JSONSerializer
from starlette.testclient import TestClient

from service.config import Settings
from service.gateway.app import create_app
from service.storage import Storage
from swintormer.cli import main
from tests import sample_images
from tests.factories import TINY_PRIOR, save_tiny_checkpoint
from worker.rqworker import DeblurWorker
from worker.runtime import Runtime
from worker.tasks import WorkerContext, bind

SEED = 7
TILING = {"tile_px": 64, "tile_overlap_px": 8, "tile_batch": 1}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    return save_tiny_checkpoint(path, prior=dataclasses.replace(TINY_PRIOR, steps=2))


@pytest.fixture
def service(redis_url: str, checkpoint: Path) -> Iterator[Callable[[bytes, str], bytes]]:
    """Deblur through the gateway and an in-process worker: (upload, format) -> result bytes."""
    settings = Settings(
        redis_url=redis_url,
        checkpoint=checkpoint,
        device="cpu",
        **TILING,  # type: ignore[arg-type]
    )
    runtime = Runtime(settings)
    runtime.setup()
    connection = redis.Redis.from_url(redis_url)
    bind(WorkerContext(runtime=runtime, settings=settings, storage=Storage(connection)))

    def deblur(data: bytes, output_format: str) -> bytes:
        form = {"seed": str(SEED), "output_format": output_format}
        accepted = client.post("/deblur", files={"file": ("in", data)}, data=form)
        assert accepted.status_code == 202, accepted.text
        worker = DeblurWorker(
            [settings.queue_name], connection=connection, serializer=JSONSerializer
        )
        worker.work(burst=True)
        result = client.get(f"/jobs/{accepted.json()['id']}/result")
        assert result.status_code == 200, client.get(f"/jobs/{accepted.json()['id']}").text
        return result.content

    with TestClient(create_app(settings)) as client:
        yield deblur
    connection.close()


def local(tmp_path: Path, checkpoint: Path, data: bytes, suffix: str) -> bytes:
    source, output = tmp_path / "in.bin", tmp_path / f"out{suffix}"
    source.write_bytes(data)
    arguments = ["deblur", str(source), "-o", str(output), "--checkpoint", str(checkpoint)]
    tiling = ["--tile-px", "64", "--overlap-px", "8", "--batch", "1", "--device", "cpu"]
    assert main([*arguments, *tiling, "--seed", str(SEED)]) == 0
    return output.read_bytes()


@pytest.mark.parametrize(
    ("builder", "output_format", "suffix", "mode"),
    [
        (sample_images.png_gray, "png", ".png", "L"),
        (sample_images.png_gray16, "png", ".png", "I;16"),
        (sample_images.png_rgba, "png", ".png", "RGBA"),
        (sample_images.jpeg_cmyk, "jpeg", ".jpg", "CMYK"),
        (sample_images.jpeg_cmyk, "png", ".png", "RGB"),
        (sample_images.png_with_icc, "png", ".png", "RGB"),
    ],
)
def test_local_command_returns_the_services_pixels(
    tmp_path: Path,
    checkpoint: Path,
    service: Callable[[bytes, str], bytes],
    builder: Callable[[], bytes],
    output_format: str,
    suffix: str,
    mode: str,
) -> None:
    data = builder()
    served = Image.open(io.BytesIO(service(data, output_format)))
    restored = Image.open(io.BytesIO(local(tmp_path, checkpoint, data, suffix)))
    assert served.mode == restored.mode == mode
    assert served.info.get("icc_profile") == restored.info.get("icc_profile")
    assert np.array_equal(np.asarray(served), np.asarray(restored))
