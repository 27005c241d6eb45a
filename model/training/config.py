"""Training configuration: a TOML file read into a frozen dataclass, with typed overrides.

A run is described by one TOML file (`configs/lite.toml`, `configs/base.toml`, `configs/tiny.toml`)
whose tables map onto the sections below. Every key must be known (a typo is an error, never a
silently ignored setting) and every value must have its field's type. `--set section.key=value`
overrides are parsed as TOML values and checked the same way, so `--set optim.lr=1e-4` works and
`--set optim.lr=fast` fails with a message naming the key and the type it wants.

The resolved configuration is stored in every checkpoint, so a run can be rebuilt from its files.
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Fields that only change how a run is observed or stored, not what it computes: `--resume` lets
# them differ from the checkpointed configuration.
OBSERVATION_KEYS = frozenset(
    {
        "run.out_dir",
        "run.device",
        "run.threads",
        "run.data_workers",
        "run.log_every",
        "run.val_every",
        "run.checkpoint_every",
        "run.checkpoint_every_s",
        "run.max_wall_s",
    }
)


class TrainConfigError(ValueError):
    """A training configuration that cannot be used: unknown key, wrong type or bad value."""


@dataclass(frozen=True)
class ModelSection:
    """What is trained."""

    preset: str = "lite"  # network preset, see model.config.preset
    use_prior: bool = True  # train the latent-diffusion prior (stages 1 and 2); False: plain L1
    prior_steps: int = 4  # T, the prior's diffusion steps (stored in the checkpoint)
    prior_channels: int = 64  # Cz, channels of the prior latent z
    use_defocus: bool = False  # defocus front end: Wiener bank blended by a blur estimator
    # the blur estimator (model.config.DefocusConfig): its channels, its residual blocks, and how
    # many widths its gradient-ratio cue re-blurs at (1, 2, 4, ... px; more read larger radii).
    # A checkpoint whose estimator differs may start the run: with fewer widths the new cues'
    # weights start at zero, otherwise the estimator starts fresh (see adopt_other_estimator
    # in model.training.train)
    estimator_width: int = 48
    estimator_blocks: int = 6
    reblur_widths: int = 4
    # whether the estimator adds evidence pooled over the image (model.defocus.ImageContext); a
    # checkpoint without it may start a run with it: the context starts at zero
    estimator_context: bool = False
    # the blend's radius softmax temperature (model.config.DefocusConfig.radius_temperature);
    # a run starting from a checkpoint must name the checkpoint's
    radius_temperature: float = 1.0
    init_from: str = ""  # checkpoint whose weights start the run (fine-tuning); "": fresh weights
    # A checkpoint without the front end may start a run with it: its weights are adopted and the
    # network's (and prior's) first layers grow from 3 to 6 input channels (model.training.train)


@dataclass(frozen=True)
class DataSection:
    """Where the (blurry, sharp) training pairs come from."""

    patch_px: int = 128  # side of a square training patch
    batch: int = 8  # patches per step
    cache_dir: str = ""  # `swintormer data prepare --cache DIR` output; "": dead leaves only
    dead_leaves_fraction: float = 1.0  # share of patches cut from procedural dead-leaves images
    val_pairs: int = 16  # fixed validation pairs, generated once from `val_seed`
    val_seed: int = 12345  # seed of the validation pairs (distinct from the training stream)
    use_lens_shapes: bool = False  # some images blurred by softened or cat-eye disks
    jpeg_probability: float = 0.0  # share of blurry inputs stored as JPEG (quality 70-95)
    clean_fraction: float = 0.0  # share of blurry inputs with no added noise (8-bit only)
    max_radius_median_px: float = 5.5  # median of an image's largest defocus radius
    max_radius_px: float = 8.0  # cap on any training radius
    uniform_blur_fraction: float = 0.0  # share of images blurred by one radius throughout


@dataclass(frozen=True)
class OptimSection:
    """AdamW, linear warm-up then cosine decay, gradient clipping and an EMA of the weights."""

    lr: float = 3e-4  # peak learning rate of stage 1
    stage2_lr: float = 1e-4  # peak learning rate of stage 2
    front_end_lr: float = 1e-3  # peak learning rate of stage 0 (the blur estimator alone)
    deployed_lr: float = 3e-5  # peak learning rate of stage 3 (the whole deployed path)
    min_lr: float = 1e-6  # floor of the cosine decay
    warmup_steps: int = 100  # linear warm-up at the start of each stage
    weight_decay: float = 1e-4  # AdamW decoupled weight decay
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping
    ema_decay: float = 0.999  # weight of the running average per step; 0 disables the EMA


@dataclass(frozen=True)
class StagesSection:
    """How long each stage runs (model.training.stages): front end, network + teacher, prior."""

    front_end_steps: int = 0  # stage 0: the blur estimator alone (needs model.use_defocus)
    radius_weight: float = 0.05  # weight of the estimator's radius cross-entropy (stages 0, 1)
    # stage 0 scores what the frozen network and prior restore from the blend instead of the
    # blend itself (the estimator learns the blend the network refines best); needs
    # model.init_from, whose network is trained
    front_end_through_network: bool = False
    # share of each batch's images blended by the true radius map in stages 1 and 2 (the rest by
    # the estimate), so the network learns to trust a correct blend; needs model.use_defocus
    true_map_fraction: float = 0.0
    stage1_steps: int = 1000  # network + teacher prior encoder (or the plain network), L1;
    # 0 (a fine-tune with a prior only) continues stage 2 of the `model.init_from` model
    stage2_steps: int = 200  # LQ prior encoder + denoiser, decoder fine-tuned; 0 skips stage 2
    stage2_finetune_decoder: bool = True  # False keeps the whole network frozen in stage 2
    # stage 3, a fine-tune only (model.init_from): estimator, network and LQ prior learn on the
    # L1 of what inference restores (z sampled from noise, as deployed); 0 skips it
    deployed_steps: int = 0
    # False keeps the blur estimator frozen in stage 3 (network and prior adapt to its blends;
    # tried once after the ninth attempt's estimator retraining: no gain, LITE_DEFOCUS_CARD.md)
    deployed_train_estimator: bool = True


@dataclass(frozen=True)
class RunSection:
    """Seeds, hardware and bookkeeping."""

    out_dir: str = "runs/lite"  # checkpoints, resume state and the log go here
    seed: int = 0  # seeds weights, data stream and diffusion noise (recorded in checkpoints)
    device: str = "auto"  # "auto" (cuda when available), "cpu", "cuda", "cuda:1", ...
    amp: str = "bf16"  # mixed precision on CUDA: "bf16", "fp16" or "off"; always off on CPU
    threads: int = 0  # torch CPU threads; 0 leaves torch's default
    data_workers: int = 0  # processes cutting training pairs ahead of the GPU; 0: in-process
    log_every: int = 10  # steps between progress lines
    val_every: int = 100  # steps between validations (and best-checkpoint updates)
    checkpoint_every: int = 100  # steps between resume checkpoints
    checkpoint_every_s: float = 300.0  # also checkpoint when this many seconds passed; 0: off
    max_wall_s: float = 0.0  # stop (after a checkpoint) once this many seconds ran; 0: no limit


@dataclass(frozen=True)
class TrainConfig:
    """A whole training run; each field is one TOML table."""

    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    stages: StagesSection = field(default_factory=StagesSection)
    run: RunSection = field(default_factory=RunSection)

    def __post_init__(self) -> None:
        _validate(self)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The configuration as nested plain values (TOML/JSON-safe)."""
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(values: dict[str, Any], source: str = "configuration") -> TrainConfig:
        """Build a configuration from nested tables; unknown tables or keys are an error."""
        sections: dict[str, Any] = {}
        known = {f.name: f for f in dataclasses.fields(TrainConfig)}
        for name, table in values.items():
            if name not in known:
                raise TrainConfigError(
                    f"{source}: unknown table [{name}]; known tables: {', '.join(known)}"
                )
            if not isinstance(table, dict):
                raise TrainConfigError(f"{source}: [{name}] must be a table, got {table!r}")
            section_type = _section_types()[name]
            sections[name] = _build_section(section_type, name, table, source)
        return TrainConfig(**sections)

    def flat(self) -> dict[str, Any]:
        """Every value keyed `section.key`."""
        return {
            f"{section}.{key}": value
            for section, table in self.to_dict().items()
            for key, value in table.items()
        }


def _section_types() -> dict[str, type]:
    hints = typing.get_type_hints(TrainConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(TrainConfig)}


def _check_value(qualified: str, value: Any, expected: Any, source: str) -> Any:
    """Return `value` converted to the field type `expected`, or raise naming the key."""
    if expected is bool:
        ok = isinstance(value, bool)
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif expected is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif expected is str:
        ok = isinstance(value, str)
    else:
        raise TypeError(f"unsupported config field type {expected!r} for {qualified}")
    if not ok:
        raise TrainConfigError(
            f"{source}: {qualified} must be {expected.__name__}, got {value!r}"
            f" ({type(value).__name__})"
        )
    return value


def _build_section(section_type: type, name: str, table: dict[str, Any], source: str) -> Any:
    hints = typing.get_type_hints(section_type)
    unknown = sorted(set(table) - set(hints))
    if unknown:
        raise TrainConfigError(
            f"{source}: unknown key(s) {', '.join(f'{name}.{k}' for k in unknown)};"
            f" known keys in [{name}]: {', '.join(hints)}"
        )
    values = {
        key: _check_value(f"{name}.{key}", value, hints[key], source)
        for key, value in table.items()
    }
    return section_type(**values)


def _parse_override(item: str) -> tuple[str, str, Any]:
    """Split `section.key=value`; the value is read as a TOML value, else kept as a string."""
    if "=" not in item:
        raise TrainConfigError(f"--set {item!r}: expected section.key=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    if key.count(".") != 1:
        raise TrainConfigError(f"--set {item!r}: the key must be section.key, e.g. optim.lr")
    section, name = key.split(".")
    try:
        value: Any = tomllib.loads(f"value = {raw.strip()}")["value"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return section, name, value


def load_train_config(path: str | Path, overrides: typing.Sequence[str] = ()) -> TrainConfig:
    """Read a TOML training configuration and apply `section.key=value` overrides.

    Args:
        path: the TOML file.
        overrides: items like `"optim.lr=1e-4"`, applied in order after the file.

    Returns:
        The validated, frozen configuration.

    Raises:
        TrainConfigError: unreadable TOML, an unknown table or key, a wrong type or a bad value.
    """
    path = Path(path)
    try:
        values = tomllib.loads(path.read_text())
    except FileNotFoundError as err:
        raise TrainConfigError(f"training configuration {path} does not exist") from err
    except tomllib.TOMLDecodeError as err:
        raise TrainConfigError(f"{path}: not valid TOML: {err}") from err
    for item in overrides:
        section, name, value = _parse_override(item)
        values.setdefault(section, {})
        if not isinstance(values[section], dict):
            raise TrainConfigError(f"--set {item!r}: {section} is not a table")
        values[section][name] = value
    return TrainConfig.from_dict(values, source=str(path))


def _validate(config: TrainConfig) -> None:
    """Range checks that types alone cannot express."""
    problems: list[str] = []
    positive = {
        "data.patch_px": config.data.patch_px,
        "data.batch": config.data.batch,
        "data.val_pairs": config.data.val_pairs,
        "model.prior_steps": config.model.prior_steps,
        "model.prior_channels": config.model.prior_channels,
        "optim.lr": config.optim.lr,
        "optim.stage2_lr": config.optim.stage2_lr,
        "optim.front_end_lr": config.optim.front_end_lr,
        "optim.deployed_lr": config.optim.deployed_lr,
        "run.log_every": config.run.log_every,
        "run.val_every": config.run.val_every,
        "run.checkpoint_every": config.run.checkpoint_every,
    }
    problems += [f"{key} must be > 0, got {value}" for key, value in positive.items() if value <= 0]
    non_negative = {
        "optim.min_lr": config.optim.min_lr,
        "optim.warmup_steps": config.optim.warmup_steps,
        "optim.weight_decay": config.optim.weight_decay,
        "optim.grad_clip": config.optim.grad_clip,
        "stages.front_end_steps": config.stages.front_end_steps,
        "stages.radius_weight": config.stages.radius_weight,
        "stages.stage1_steps": config.stages.stage1_steps,
        "stages.stage2_steps": config.stages.stage2_steps,
        "stages.deployed_steps": config.stages.deployed_steps,
        "run.threads": config.run.threads,
        "run.data_workers": config.run.data_workers,
        "run.checkpoint_every_s": config.run.checkpoint_every_s,
        "run.max_wall_s": config.run.max_wall_s,
    }
    problems += [
        f"{key} must be >= 0, got {value}" for key, value in non_negative.items() if value < 0
    ]
    for key, value in {
        "optim.beta1": config.optim.beta1,
        "optim.beta2": config.optim.beta2,
        "optim.ema_decay": config.optim.ema_decay,
    }.items():
        if not 0.0 <= value < 1.0:
            problems.append(f"{key} must be in [0, 1), got {value}")
    if not 0.0 <= config.data.jpeg_probability <= 1.0:
        problems.append(
            f"data.jpeg_probability must be in [0, 1], got {config.data.jpeg_probability}"
        )
    if not 0.0 <= config.data.clean_fraction <= 1.0:
        problems.append(f"data.clean_fraction must be in [0, 1], got {config.data.clean_fraction}")
    if not 0.0 <= config.data.dead_leaves_fraction <= 1.0:
        problems.append(
            f"data.dead_leaves_fraction must be in [0, 1], got {config.data.dead_leaves_fraction}"
        )
    if not 0.0 <= config.data.uniform_blur_fraction <= 1.0:
        problems.append(
            f"data.uniform_blur_fraction must be in [0, 1], got {config.data.uniform_blur_fraction}"
        )
    if not 0.0 < config.data.max_radius_median_px <= config.data.max_radius_px:
        problems.append(
            "need 0 < data.max_radius_median_px <= data.max_radius_px, got "
            f"{config.data.max_radius_median_px} and {config.data.max_radius_px}"
        )
    if not config.data.cache_dir and config.data.dead_leaves_fraction < 1.0:
        problems.append("data.dead_leaves_fraction must be 1.0 when data.cache_dir is empty")
    if config.run.amp not in ("bf16", "fp16", "off"):
        problems.append(f"run.amp must be 'bf16', 'fp16' or 'off', got {config.run.amp!r}")
    if not config.model.use_prior and config.stages.stage2_steps:
        problems.append("stages.stage2_steps must be 0 when model.use_prior is false")
    if not 0.0 <= config.stages.true_map_fraction <= 1.0:
        problems.append(
            f"stages.true_map_fraction must be in [0, 1], got {config.stages.true_map_fraction}"
        )
    if config.stages.true_map_fraction and not config.model.use_defocus:
        problems.append("stages.true_map_fraction must be 0 when model.use_defocus is false")
    if config.model.estimator_width < 1 or config.model.estimator_blocks < 0:
        problems.append("need model.estimator_width >= 1 and model.estimator_blocks >= 0")
    if not config.model.radius_temperature > 0:
        problems.append(
            f"model.radius_temperature must be > 0 (got {config.model.radius_temperature})"
        )
    if not 1 <= config.model.reblur_widths <= 6:
        problems.append(f"model.reblur_widths must be in 1..6 (got {config.model.reblur_widths})")
    if config.stages.front_end_steps and not config.model.use_defocus:
        problems.append("stages.front_end_steps must be 0 when model.use_defocus is false")
    if config.stages.front_end_through_network and not (
        config.model.init_from and config.stages.front_end_steps
    ):
        problems.append(
            "stages.front_end_through_network needs stages.front_end_steps > 0 and a trained "
            "network to score through (model.init_from)"
        )
    if config.stages.deployed_steps and not config.model.init_from:
        problems.append(
            "stages.deployed_steps needs a trained model to fine-tune (model.init_from)"
        )
    prior_fine_tune = config.model.use_prior and config.stages.stage2_steps > 0
    other_stage = prior_fine_tune or config.stages.front_end_steps or config.stages.deployed_steps
    if config.stages.stage1_steps == 0 and not (config.model.init_from and other_stage):
        # stage 0, 2 or 3 alone needs a trained network (and teacher): only a fine-tune may skip
        # stage 1
        problems.append(
            "stages.stage1_steps may be 0 only in a fine-tune (model.init_from) that trains the "
            "prior (model.use_prior, stages.stage2_steps > 0), the blur estimator "
            "(stages.front_end_steps > 0) or the deployed path (stages.deployed_steps > 0)"
        )
    if problems:
        raise TrainConfigError("; ".join(problems))
