"""The progress bar of the `swintormer` commands that restore tiles (`submit`, `deblur`)."""

from __future__ import annotations

import sys

BAR_WIDTH = 30


def draw_progress(done: int, total: int, status: str = "") -> None:
    """Redraw `[####----] done/total tiles  status` in place on stderr (no newline).

    Args:
        done: tiles restored so far.
        total: tiles in the image; 0 while unknown (an empty bar).
        status: a word after the count, e.g. the job's status; empty: none.
    """
    filled = BAR_WIDTH * done // total if total else 0
    bar = "#" * filled + "-" * (BAR_WIDTH - filled)
    suffix = f"  {status:<9}" if status else ""
    sys.stderr.write(f"\r[{bar}] {done}/{total} tiles{suffix}")
    sys.stderr.flush()


def end_progress() -> None:
    """End the bar's line, so what is printed next starts on a line of its own."""
    sys.stderr.write("\n")
    sys.stderr.flush()
