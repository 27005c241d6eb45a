"""Validating big uploads on many threads does not leave the gateway holding their memory."""

from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from service.uploads import configure_pillow, inspect_upload

MAX_PIXELS = 50_000_000


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_one_thread_after_another_decoding_16_mp_returns_the_memory() -> None:
    configure_pillow(MAX_PIXELS)
    buffer = io.BytesIO()
    Image.new("RGB", (4000, 4000)).save(buffer, "PNG", compress_level=1)
    data = buffer.getvalue()  # ~50 KB declaring 16 MP: 48 MB decoded
    one_at_a_time = threading.Lock()

    def validate(_: int) -> float:
        with one_at_a_time:  # as the decode budget lets a big upload through alone
            info = inspect_upload(data, MAX_PIXELS)
        assert (info.width, info.height) == (4000, 4000)
        return rss_mb()

    before = rss_mb()
    with ThreadPoolExecutor(max_workers=4) as pool:
        after = list(pool.map(validate, range(4)))
    # glibc kept each thread's freed 16 MiB Pillow blocks: +48 MB a thread, ~200 MB in all
    assert max(after) - before < 60, (before, after)
