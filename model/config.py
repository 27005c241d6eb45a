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
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, TypeVar

from model.diffusion import GaussianDiffusion

Config = TypeVar("Config")

LEVELS = 4  # encoder levels 1-3 plus the latent level; fixed by the released design
# The latent level of the network and the prior's latent grid run at 1/16 of the padded input.
LATENT_STRIDE = 16


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


# the re-blur widths of every defocus checkpoint written before they were a config field
LEGACY_REBLUR_SIGMAS_PX = (1.0, 2.0)


@dataclass(frozen=True)
class DefocusConfig:
    """Hyper-parameters of the defocus front end (`model.defocus`): bank and blur estimator.

    The bank's radii span in focus to beyond the training range (the largest training radius
    is 8 px at 1 MP); they are not the evaluation's radii (1.5, 3, 4.5, 6 px), so the
    evaluation never lands on a bank radius by construction.
    """

    radii_px: tuple[float, ...] = (0.0, 0.6, 1.1, 1.7, 2.4, 3.2, 4.1, 5.2, 6.5, 8.0, 10.0, 12.5)
    balances: tuple[float, ...] = (3e-4, 1e-2)  # Wiener regularisation weights, ascending
    estimator_width: int = 48  # channels of the estimator at 1/4 resolution
    estimator_blocks: int = 6  # residual blocks, dilations 1, 2, 4, 8 (repeating)
    # Gaussian re-blur widths (px) of the estimator's gradient-ratio cue (Zhuo & Sim 2011): a
    # width reads blur of comparable size (the ratio flattens towards 1 for blur much wider
    # than it), so reading 8-12 px radii needs widths up to ~8 px. Checkpoints written before
    # this field existed used LEGACY_REBLUR_SIGMAS_PX (`from_dict` fills them in).
    reblur_sigmas_px: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
    # Whether the estimator pools evidence over the whole image (tile) and adds it to every
    # cell (model.defocus.ImageContext); False in every checkpoint written before it existed.
    estimator_context: bool = False
    # Divides the radius scores before the softmax that weights the bank's radii in the blend
    # (below 1 sharpens the weights towards the most likely radius). A linear mix of Wiener
    # candidates at neighbouring radii rings where one candidate at the right radius would not
    # (bench.bank_ceiling), so a sharper mix might restore better than the trained one; the
    # radius loss always reads the raw scores. Chosen per checkpoint on training-like pairs
    # (bench.radius_temperature): for the shipped default, 1 measured best.
    radius_temperature: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "radii_px", tuple(float(r) for r in self.radii_px))
        object.__setattr__(self, "balances", tuple(float(b) for b in self.balances))
        object.__setattr__(self, "reblur_sigmas_px", tuple(float(s) for s in self.reblur_sigmas_px))
        problems = []
        radii, balances = self.radii_px, self.balances
        if len(radii) < 2 or radii[0] != 0.0 or list(radii) != sorted(set(radii)):
            problems.append(f"radii_px must start at 0 and strictly increase (got {radii})")
        if not balances or min(balances) <= 0 or list(balances) != sorted(set(balances)):
            problems.append(f"balances must be positive and strictly increase (got {balances})")
        sigmas = self.reblur_sigmas_px
        if not sigmas or min(sigmas) <= 0 or list(sigmas) != sorted(set(sigmas)):
            problems.append(
                f"reblur_sigmas_px must be positive and strictly increase (got {sigmas})"
            )
        if not self.radius_temperature > 0:
            problems.append(f"radius_temperature must be > 0 (got {self.radius_temperature})")
        if self.estimator_width < 1 or self.estimator_blocks < 0:
            problems.append("estimator_width must be >= 1 and estimator_blocks >= 0")
        if problems:
            raise ValueError("invalid DefocusConfig: " + "; ".join(problems))

    @property
    def margin_px(self) -> int:
        """Padding of the bank's FFTs: twice the largest radius plus 8 px (no wrap-around)."""
        return math.ceil(2 * self.radii_px[-1]) + 8

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (tuples become lists)."""
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in asdict(self).items()
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DefocusConfig:
        """Inverse of `to_dict`; rejects unknown keys by name. A dict without re-blur widths
        comes from a checkpoint written before they were a field: it used the legacy ones."""
        return from_known_fields(cls, {"reblur_sigmas_px": LEGACY_REBLUR_SIGMAS_PX, **data})


@dataclass(frozen=True)
class PriorConfig:
    """Architecture hyper-parameters of the prior; stored in the checkpoint beside the weights."""

    in_channels: int = 3  # channels of the blurry input; equals the network's (6 = dual-pixel)
    target_channels: int = 3  # channels of the sharp image the teacher sees
    latent_channels: int = 64  # Cz, channels of z; equals the network's cond_channels
    encoder_width: int = 32  # encoder channels at 1/4 resolution; doubled at 1/8 and 1/16
    denoiser_width: int = 64  # channels inside the denoiser
    denoiser_blocks: int = 2  # residual blocks in the denoiser
    steps: int = 4  # T, diffusion steps the prior is trained with (and samples by default)
    beta_start: float = 0.1  # beta_1 of the linear schedule (DiffIR's end point)
    beta_end: float = 0.99  # beta_T: z_T is nearly pure noise even for small T

    def __post_init__(self) -> None:
        positive = (
            "in_channels",
            "target_channels",
            "latent_channels",
            "encoder_width",
            "denoiser_width",
            "denoiser_blocks",
            "steps",
        )
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"PriorConfig.{name} must be a positive int, got {value!r}")
        # Validates the betas with a clear message.
        GaussianDiffusion(self.steps, self.beta_start, self.beta_end)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PriorConfig:
        """Inverse of `to_dict`; unknown keys are an error (a newer checkpoint, a typo)."""
        return from_known_fields(cls, d)


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


@dataclass(frozen=True)
class ModelConfig:
    """The whole deployable model: network, optional prior, optional defocus front end.

    Validated once, here, so that no caller wires the parts together by hand:
    - with a prior, the network's FiLM hook takes the prior's latent
      (`network.cond_channels == prior.latent_channels`) and the prior reads what the network
      reads (`prior.in_channels == network.in_channels`); without one the hook, if any, is
      unused (`compose` leaves it out);
    - with the front end, the network reads its blend beside the blurry image: 6 channels.
    """

    network: SwintormerConfig
    prior: PriorConfig | None = None
    defocus: DefocusConfig | None = None

    def __post_init__(self) -> None:
        net, prior = self.network, self.prior
        problems = []
        if prior is not None:
            if net.cond_channels != prior.latent_channels:
                problems.append(
                    f"the network's cond_channels ({net.cond_channels}) must equal the prior's "
                    f"latent_channels ({prior.latent_channels})"
                )
            if net.in_channels != prior.in_channels:
                problems.append(
                    f"the network takes {net.in_channels} input channels, the prior "
                    f"{prior.in_channels}"
                )
        if self.defocus is not None and net.in_channels != 2 * 3:
            problems.append(
                f"with the defocus front end the network reads blend + blurry (6 channels), "
                f"not {net.in_channels}"
            )
        if problems:
            raise ValueError("invalid ModelConfig: " + "; ".join(problems))

    @property
    def image_channels(self) -> int:
        """Channels of the image the model takes: 3, or 6 for a dual-pixel network."""
        return 3 if self.defocus is not None else self.network.in_channels

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form: {"network": ..., "prior": ... | None, "defocus": ... | None}."""
        return {
            "network": self.network.to_dict(),
            "prior": None if self.prior is None else self.prior.to_dict(),
            "defocus": None if self.defocus is None else self.defocus.to_dict(),
        }

    def differences(self, wanted: ModelConfig) -> list[str]:
        """'part.field: ours vs wanted' for each field that differs, 'part: present vs none'
        for a part only one side has (`config_differences` per part)."""
        problems: list[str] = []
        ours, theirs = self.to_dict(), wanted.to_dict()
        for part in ours:
            a, b = ours[part], theirs[part]
            if a is None or b is None:
                if (a is None) != (b is None):
                    problems.append(
                        f"{part}: {'none' if a is None else 'present'} vs"
                        f" {'none' if b is None else 'present'}"
                    )
                continue
            problems += config_differences(
                {f"{part}.{k}": v for k, v in a.items()}, {f"{part}.{k}": v for k, v in b.items()}
            )
        return problems

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of `to_dict`; unknown keys at either level are an error."""
        unknown = sorted(set(data) - {"network", "prior", "defocus"})
        if unknown:
            raise ValueError(f"unknown ModelConfig keys: {', '.join(unknown)}")
        prior, defocus = data.get("prior"), data.get("defocus")
        return cls(
            network=SwintormerConfig.from_dict(data["network"]),
            prior=None if prior is None else PriorConfig.from_dict(prior),
            defocus=None if defocus is None else DefocusConfig.from_dict(defocus),
        )


def compose(
    network: str | SwintormerConfig,
    prior: PriorConfig | None = None,
    defocus: DefocusConfig | None = None,
) -> ModelConfig:
    """A `ModelConfig` from a network (preset name or config) and optional parts.

    The network's input channels and FiLM hook are set from the parts (6 channels with the
    front end, cond_channels = the prior's latent), and the prior reads what the network reads,
    so the invariants hold by construction.
    """
    net = preset(network) if isinstance(network, str) else network
    if defocus is not None:
        net = replace(net, in_channels=6)
    net = replace(net, cond_channels=0 if prior is None else prior.latent_channels)
    if prior is not None:
        prior = replace(prior, in_channels=net.in_channels)
    return ModelConfig(net, prior, defocus)


_MODEL_PRESETS: dict[str, ModelConfig] = {
    # the released network alone, bit-exact to the authors' code
    "paper": compose("paper"),
    # the GPU model: base widths, single image, prior
    "base-prior": compose("base", PriorConfig()),
    # the CPU model shipped until the defocus front end: lite + prior
    "lite-prior": compose("lite", PriorConfig()),
    # the default: defocus front end (Wiener bank + blur estimator), lite refining it, prior
    "lite-defocus": compose("lite", PriorConfig(), DefocusConfig()),
    # for tests: tiny network, small prior, small front end
    "tiny": compose("tiny"),
    "tiny-defocus": compose(
        "tiny",
        PriorConfig(latent_channels=8, encoder_width=8, denoiser_width=16, denoiser_blocks=1),
        DefocusConfig(radii_px=(0.0, 1.0, 2.5, 4.5), estimator_width=8, estimator_blocks=2),
    ),
}

MODEL_PRESETS: tuple[str, ...] = tuple(_MODEL_PRESETS)


def model_preset(name: str) -> ModelConfig:
    """The named deployable model (one of `MODEL_PRESETS`)."""
    try:
        return _MODEL_PRESETS[name]
    except KeyError:
        raise ValueError(
            f"unknown model preset {name!r}; choose one of {', '.join(MODEL_PRESETS)}"
        ) from None
