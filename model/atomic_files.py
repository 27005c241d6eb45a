"""Atomic file writes: a file appears whole under its name, or not at all.

A writer writes a temporary sibling, which is then renamed over the target (`os.replace`, atomic
within one file system), so a reader, a resumed run or a worker loading a checkpoint never sees
a torn file, and an interrupted write leaves the previous file in place.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

PARTIAL_MARK = ".partial"  # temporary siblings are named `<stem>.partial<suffix>`


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary sibling of `path` to write to, renamed over `path` when the block succeeds.

    The temporary name keeps the suffix (`best.safetensors` -> `best.partial.safetensors`), for
    writers that check it. When the block raises, the temporary file is removed and `path` is
    left as it was.

    Args:
        path: the file to write.

    Yields:
        The temporary path to write the whole file to.
    """
    path = Path(path)
    partial = path.with_name(path.stem + PARTIAL_MARK + path.suffix)
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
