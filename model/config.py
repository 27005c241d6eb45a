"""Architecture hyper-parameters of the Swintormer network and its named presets.

The config is a frozen dataclass that travels inside every checkpoint (`to_dict` / `from_dict`
give its JSON form), so a network rebuilds from its file alone. Deployment settings (devices,
tile sizes, limits) live elsewhere and never go in here.

Presets:
    paper: the network exactly as the authors released it (dual-pixel, 6 input channels).
    base:  the same widths and depths on a single 3-channel image: the model served on a GPU.
    lite:  a 3-channel network of at most 8.0 GMAC per 3x256x256 counting attention matmuls,
           the paper's efficiency claim that the released configuration does not meet.
    tiny:  0.29 M parameters (dim 8, window 4), for tests.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

Config = TypeVar("Config")

LEVELS = 4  # encoder levels 1-3 plus the latent level; fixed by the released design


@dataclass(frozen=True)
class SwintormerConfig:
    """Hyper-parameters of one Swintormer network (defaults = the released network)."""

    in_channels: int = 6  # 6 = dual-pixel cat([R, L]) as released, 3 = single image
    dim: int = 48  # width C of level 1; levels 2, 3 and latent use 2C, 4C, 8C
    num_blocks: tuple[int, int, int, int] = (2, 4, 6, 8)  # blocks per level (enc 1-3, latent)
    num_refinement_blocks: int = 4  # blocks at 2C after decoder level 1
    heads: tuple[int, int, int, int] = (1, 2, 4, 8)  # attention heads per level
    ffn_factor: float = 2.66  # feed-forward hidden width = int(ffn_factor * width)
    bias: bool = False  # biases in the block convs, reductions, skip and head (released: off)
    window_size: int = 16  # attention window of every level unless window_sizes overrides it
    window_sizes: tuple[int, int, int, int] | None = None  # per-level windows (deeper: smaller)
    cond_channels: int = 0  # channels of the prior latent z fed to FiLM; 0 = no FiLM hook

    def __post_init__(self) -> None:
        # JSON round trips turn tuples into lists; normalise so equality and hashing hold
        object.__setattr__(self, "num_blocks", tuple(self.num_blocks))
        object.__setattr__(self, "heads", tuple(self.heads))
        if self.window_sizes is not None:
            object.__setattr__(self, "window_sizes", tuple(self.window_sizes))
        problems = self._problems()
        if problems:
            raise ValueError("invalid SwintormerConfig: " + "; ".join(problems))

    def _problems(self) -> list[str]:
        problems: list[str] = []
        if self.in_channels < 3:
            problems.append(f"in_channels must be >= 3 (got {self.in_channels})")
        for name in ("num_blocks", "heads", "window_sizes"):
            value = getattr(self, name)
            if value is not None and len(value) != LEVELS:
                problems.append(f"{name} needs {LEVELS} entries (got {len(value)})")
        if problems:
            return problems
        if self.dim < 2 or self.dim % 2:
            problems.append(f"dim must be even and >= 2 (got {self.dim})")
        if min(self.num_blocks) < 1 or self.num_refinement_blocks < 0:
            problems.append("every level needs at least one block; refinement blocks >= 0")
        if self.ffn_factor <= 0 or int(self.ffn_factor * self.dim) < 1:
            problems.append(f"ffn_factor gives an empty feed-forward (got {self.ffn_factor})")
        if min(self.level_windows) < 2:
            problems.append(f"windows must be >= 2 pixels (got {self.level_windows})")
        if self.cond_channels < 0:
            problems.append(f"cond_channels must be >= 0 (got {self.cond_channels})")
        # each branch of the mixed attention splits half the width over the heads
        widths = (*self.level_widths, 2 * self.dim)
        for width, heads in zip(widths, (*self.heads, self.heads[0]), strict=True):
            if heads < 1 or (width // 2) % heads:
                problems.append(f"width {width} // 2 is not divisible by {heads} heads")
        return problems

    @property
    def level_widths(self) -> tuple[int, int, int, int]:
        """Channels of encoder levels 1-3 and the latent level: (C, 2C, 4C, 8C)."""
        return (self.dim, 2 * self.dim, 4 * self.dim, 8 * self.dim)

    @property
    def level_windows(self) -> tuple[int, int, int, int]:
        """Attention window of each level (decoder levels share their encoder's window)."""
        if self.window_sizes is not None:
            return self.window_sizes
        window = self.window_size
        return (window, window, window, window)

    @property
    def size_multiple(self) -> int:
        """Input H and W must be multiples of this so that every level holds whole windows.

        Level l (1-based) runs at 1/2^l of the input, so it needs H to be a multiple of
        2^l * window_l.
        """
        return math.lcm(*(window << level for level, window in enumerate(self.level_windows, 1)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (tuples become lists)."""
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in asdict(self).items()
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SwintormerConfig:
        """Inverse of `to_dict`; rejects unknown keys by name."""
        return from_known_fields(cls, data)


def from_known_fields(cls: type[Config], data: dict[str, Any]) -> Config:
    """`cls(**data)` for a config dataclass read from a file, unknown keys named in the error.

    A key the class does not know is a checkpoint from a newer version or a typo, never
    something to drop silently.
    """
    known = {field.name for field in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {', '.join(unknown)}")
    return cls(**data)


def config_differences(
    saved: Mapping[str, Any], wanted: Mapping[str, Any], ignore: Collection[str] = ()
) -> list[str]:
    """'key: saved vs wanted' for each key whose value differs between two flat config dicts.

    A key present on one side only is compared against None on the other. Used to refuse a
    checkpoint or a resumed run whose configuration is not the one asked for, naming the keys.

    Args:
        saved: the configuration a file was written with, `key -> value`.
        wanted: the configuration asked for now, keyed the same way.
        ignore: keys allowed to differ.

    Returns:
        One line per differing key, sorted by key.
    """
    return [
        f"{key}: {saved.get(key)!r} vs {wanted.get(key)!r}"
        for key in sorted(set(saved) | set(wanted))
        if key not in ignore and saved.get(key) != wanted.get(key)
    ]


_PRESETS: dict[str, SwintormerConfig] = {
    "paper": SwintormerConfig(),
    "base": SwintormerConfig(in_channels=3),
    # the paper's depths at half the width with 8 px windows: 7.88 GMAC at 3x256x256 counting
    # attention matmuls (`swintormer profile --preset lite`), 6.4 M parameters
    "lite": SwintormerConfig(in_channels=3, dim=24, window_size=8),
    "tiny": SwintormerConfig(
        in_channels=3,
        dim=8,
        num_blocks=(1, 2, 1, 2),
        num_refinement_blocks=1,
        heads=(1, 2, 2, 4),
        window_size=4,
    ),
}

PRESETS: tuple[str, ...] = tuple(_PRESETS)


def preset(name: str) -> SwintormerConfig:
    """The named preset (one of `PRESETS`)."""
    try:
        return _PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
