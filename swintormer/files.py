"""Files the `swintormer` commands write: whole or not at all."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that `path` never holds a partial file.

    The bytes go to `<path>.partial` beside it, then replace `path` in one rename: a command
    stopped midway leaves the previous file (or none), never a truncated image.
    """
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)
