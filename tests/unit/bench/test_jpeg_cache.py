"""A packed cache unpacks to what `DefocusPatches.from_cache` reads, within JPEG's error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.jpeg_cache import main, pack, unpack
from model.data.pairs import DefocusPatches, PatchSettings


def _cache(folder: Path) -> Path:
    """A two-photo prepared cache: smooth gradients with some texture."""
    (folder / "photos").mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = ["first", "second"]
    for name in names:
        ramp = np.linspace(0, 200, 96, dtype=np.float32)
        image = ramp[None, :, None] + ramp[:, None, None] * 0.2 + rng.normal(0, 4, (96, 96, 3))
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(folder / f"photos/{name}.png")
    (folder / "manifest.json").write_text(json.dumps([{"name": n} for n in names]))
    patches = [{"photo": n, "y": 0, "x": 0} for n in names]
    (folder / "patches.json").write_text(json.dumps({"patch_px": 64, "patches": patches}))
    return folder


def test_pack_then_unpack_gives_a_readable_cache_close_to_the_original(tmp_path: Path) -> None:
    cache = _cache(tmp_path / "cache")
    psnrs = pack(cache, tmp_path / "packed")
    assert sorted(p.name for p in (tmp_path / "packed/photos").iterdir()) == [
        "first.jpg",
        "second.jpg",
    ]
    assert min(psnrs) > 35.0
    assert unpack(tmp_path / "packed", tmp_path / "again") == 2
    settings = PatchSettings(patch_px=64)
    original = DefocusPatches.from_cache(cache, settings)
    rebuilt = DefocusPatches.from_cache(tmp_path / "again", settings)
    for before, after, reported in zip(original.photos, rebuilt.photos, psnrs, strict=True):
        # the rebuilt PNG is the JPEG exactly: its error is the one `pack` reported
        error = before.astype(np.float64) - after.astype(np.float64)
        assert 10 * np.log10(255.0**2 / np.mean(error**2)) == pytest.approx(reported, abs=1e-9)
    assert rebuilt.patches == original.patches


def test_a_folder_without_a_manifest_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["pack", str(tmp_path), str(tmp_path / "out")]) == 2
    assert "not a prepared cache" in capsys.readouterr().err
