"""Photo preparation: DEP-5 licences, apt errors, the whole pipeline on local packages.

The real download (~170 MB) is `swintormer data prepare` (docs/data.md); here `apt-get
download` is replaced by a runner that builds the package locally with `dpkg-deb --build`,
and the real `dpkg-deb -x` unpacks it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model.data.degrade import convolve
from model.data.photos import (
    DEBIAN_PHOTOS,
    DataPrepareError,
    PhotoSource,
    licence_for,
    load_prepared,
    parse_copyright,
    patch_sharpness,
    prepare_photos,
    select_patches,
)
from model.psf import disk_psf

COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: test-wallpapers

Files: *
Copyright: 2014 Someone
License: GPL-2+

Files: 16.04/lake_by_Ann.jpg
Copyright: Ann Author, 2018
License: CC-BY-4.0

Files: nature/Leaf.jpg
       nature/Tree.jpg
Copyright: 2008, Bob <bob@example.org>
           2009, Carol
License: CC-BY-SA-4.0

Files: debian/*
Copyright: 2020, Packager
License: Expat

License: CC-BY-4.0
 Attribution 4.0 International
"""


def test_licence_for_matches_installed_paths_to_source_patterns() -> None:
    stanzas = parse_copyright(COPYRIGHT)
    assert len(stanzas) == 4
    lake = licence_for("usr/share/backgrounds/lake_by_Ann.jpg", stanzas)
    assert (lake.licence, lake.copyright) == ("CC-BY-4.0", "Ann Author, 2018")
    tree = licence_for("usr/share/backgrounds/mate/nature/Tree.jpg", stanzas)
    assert tree.licence == "CC-BY-SA-4.0"
    assert tree.copyright == "2008, Bob <bob@example.org> 2009, Carol"
    other = licence_for("usr/share/wallpapers/X/contents/images/1.jpg", stanzas)
    assert other.licence == "GPL-2+"
    with pytest.raises(DataPrepareError, match="no licence"):
        licence_for("a/b.jpg", stanzas[1:2])


def test_photo_list_is_the_checked_38_with_unique_names() -> None:
    assert len(DEBIAN_PHOTOS) == 38
    assert len({p.name for p in DEBIAN_PHOTOS}) == 38
    megapixels = sum(p.width * p.height for p in DEBIAN_PHOTOS) / 1e6
    assert 210 < megapixels < 220


def test_missing_apt_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DataPrepareError, match=r"apt-get not found.*--photos DIR"):
        prepare_photos(tmp_path / "cache")


def _textured(seed: int, h: int = 128, w: int = 192) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return convolve(rng.random((h, w, 3)).astype(np.float32), disk_psf(0.5))


def _save(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(pixels * 255).astype(np.uint8)).save(path, quality=95)


def test_patch_selection_drops_the_blurry_patches() -> None:
    sharp = _textured(0)
    blurred = convolve(sharp, disk_psf(4.0))
    photo = np.concatenate([sharp, blurred], axis=1)  # (128, 384): 3 sharp, 3 blurred patches
    ranked = patch_sharpness(photo, 64)
    assert len(ranked) == 12
    kept = select_patches({"p": ranked}, drop_fraction=0.5)
    assert len(kept) == 6
    assert all(p["x"] < 192 for p in kept)
    with pytest.raises(ValueError, match="drop_fraction"):
        select_patches({"p": ranked}, 1.0)


def test_prepare_user_photos(tmp_path: Path) -> None:
    _save(tmp_path / "mine" / "a.png", _textured(1))
    _save(tmp_path / "mine" / "b.jpg", _textured(2, 160, 128))
    (tmp_path / "mine" / "notes.txt").write_text("not a photo")
    prepared = prepare_photos(
        tmp_path / "cache", tmp_path / "mine", patch_px=32, drop_fraction=0.25
    )
    assert [e["name"] for e in prepared.manifest] == ["a", "b"]
    assert prepared.manifest[0]["prepared_size"] == [96, 64]
    assert prepared.manifest[1]["licence"] == "user-supplied"
    total = (64 // 32) * (96 // 32) + (80 // 32) * (64 // 32)
    assert (
        len(prepared.patches) == total - int(np.ceil(0.25 * total)) + 1
        or len(prepared.patches) < total
    )
    again = load_prepared(tmp_path / "cache")
    assert again.patches == prepared.patches
    assert again.patch_px == 32
    with Image.open(again.photos_dir / "a.png") as image:
        assert image.size == (96, 64)
    with pytest.raises(DataPrepareError, match="data prepare"):
        load_prepared(tmp_path / "empty")
    with pytest.raises(DataPrepareError, match="not a folder"):
        prepare_photos(tmp_path / "cache2", tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataPrepareError, match=r"no \.jpg"):
        prepare_photos(tmp_path / "cache2", tmp_path / "empty")


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb (Debian tools)")
def test_prepare_from_debian_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = "test-wallpapers"
    tree = tmp_path / "build" / package
    _save(tree / "usr/share/backgrounds/lake_by_Ann.jpg", _textured(3))
    _save(tree / "usr/share/backgrounds/mate/nature/Leaf.jpg", _textured(4, 96, 96))
    doc = tree / "usr/share/doc" / package
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(COPYRIGHT)
    (tree / "DEBIAN").mkdir()
    control = f"Package: {package}\nVersion: 1.0-1\nArchitecture: all\nMaintainer: T <t@t>\n"
    (tree / "DEBIAN" / "control").write_text(control + "Description: test\n")
    calls: list[list[str]] = []

    def runner(command: Sequence[str], cwd: Path) -> None:
        calls.append(list(command))
        if command[:2] == ["apt-get", "download"]:
            deb = cwd / f"{package}_1.0-1_all.deb"
            subprocess.run(
                ["dpkg-deb", "--build", str(tree), str(deb)], check=True, capture_output=True
            )
        else:
            subprocess.run(list(command), cwd=cwd, check=True, capture_output=True)

    sources = [
        PhotoSource(package, "usr/share/backgrounds/lake_by_Ann.jpg", 192, 128),
        PhotoSource(package, "usr/share/backgrounds/mate/nature/Leaf.jpg", 96, 96),
    ]
    if shutil.which("apt-get") is None:
        pytest.skip("needs apt-get on PATH (it is never run: the runner builds the package)")
    # a relative cache path works (the tools run with their working directory in the cache)
    monkeypatch.chdir(tmp_path)
    prepared = prepare_photos(Path("cache"), runner=runner, patch_px=32, sources=sources)
    assert [c[0] for c in calls] == ["apt-get", "dpkg-deb"]
    lake, leaf = prepared.manifest
    assert (lake["licence"], lake["copyright"]) == ("CC-BY-4.0", "Ann Author, 2018")
    assert leaf["licence"] == "CC-BY-SA-4.0"
    assert leaf["prepared_size"] == [48, 48]
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert manifest[0]["name"] == "lake_by_Ann"
    # A second run reuses the cache: nothing is downloaded or unpacked again.
    prepare_photos(tmp_path / "cache", runner=runner, patch_px=32, sources=sources)
    assert len(calls) == 2
    wrong = [PhotoSource(package, "usr/share/backgrounds/lake_by_Ann.jpg", 100, 100)]
    with pytest.raises(DataPrepareError, match="expected 100x100"):
        prepare_photos(tmp_path / "cache", runner=runner, sources=wrong)
