"""A bound on the pixels the gateway decodes at once, across all requests.

Validating an upload decodes it, and a small compressed file may declare tens of megapixels:
a 160 KB PNG of 49 MP cost ~380 MB, four at once 1.6 GB. Each validation first reads the
pixel count from the header (no decoding), then reserves that many pixels here and waits,
up to `decode_wait_s`, while others hold the budget; a request that cannot get its share in
time is refused with 503 `server_busy` and Retry-After. Decoding memory is then bounded by
`decode_pixel_budget` pixels (a few bytes each) whatever the number of requests.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator


class DecodeBudgetExhaustedError(Exception):
    """The pixels could not be reserved within the wait."""


class DecodeBudget:
    """Pixels reserved by the decodes in flight, at most `capacity` together."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.in_use = 0
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def reserve(self, pixels: int, wait_s: float) -> Iterator[None]:
        """Hold `pixels` (at most the capacity) for the block; wait up to `wait_s` for them.

        Raises:
            DecodeBudgetExhaustedError: they did not become free in time.
        """
        share = min(max(pixels, 1), self.capacity)
        deadline = time.monotonic() + wait_s
        with self._changed:
            while self.in_use + share > self.capacity:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DecodeBudgetExhaustedError(
                        f"{self.in_use} of {self.capacity} pixels are being decoded"
                    )
                self._changed.wait(left)
            self.in_use += share
        try:
            yield
        finally:
            with self._changed:
                self.in_use -= share
                self._changed.notify_all()
