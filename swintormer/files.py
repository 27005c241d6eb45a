"""Files the `swintormer` commands write: whole or not at all (`model.atomic_files`)."""

from __future__ import annotations

from pathlib import Path

from model.atomic_files import atomic_path


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that `path` never holds a partial file.

    The bytes go to a temporary sibling, then replace `path` in one rename: a command stopped
    midway leaves the previous file (or none), never a truncated image.
    """
    with atomic_path(path) as partial:
        partial.write_bytes(data)
