"""Training the deployable model: the pieces `model.training.fit` runs, built from a `TrainConfig`.

`model_config` turns the run's `[model]` section into a `ModelConfig`; `build_stages` lists the
stages it asks for from `model.training.stages` (stage 0: the defocus front end alone; stage 1:
network, teacher and blur estimator; stage 2: the prior, decoder fine-tuned); `train` wires the
data pipeline, the stages and the loop. Only stages whose validation runs what inference runs
(stage 2, or stage 1 without a prior) produce `best.safetensors`.

A fine-tune (`model.init_from`) may skip stage 1 (`stages.stage1_steps = 0`) and run stage 2
alone, and may start a model with the defocus front end from one without it
(`adopt_without_front_end`). Every checkpoint is written with `save_restorer` (safetensors; the
training configuration and seed in its provenance).
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from model.checkpoint import read_checkpoint
from model.config import DefocusConfig, ModelConfig, PriorConfig, compose
from model.data.degrade import BlurDistribution, KernelShapes, SensorModel
from model.data.pairs import DefocusPatches, PatchSettings
from model.devices import resolve_device
from model.restorer import Restorer, build_restorer, load_restorer, save_restorer
from model.training import stages as stage_fns
from model.training.config import DataSection, ModelSection, TrainConfig, TrainConfigError
from model.training.fit import Batch, FitResult, Pairs, PairSource, Stage, fit


class PatchBatches:
    """`fit`'s pair source over `DefocusPatches` (model.data.pairs).

    A step's batch is the items at `batch` indices drawn from that step's generator, so it is a
    pure function of (seed, step) like everything else in a step, whatever the worker count.
    """

    def __init__(self, patches: DefocusPatches, description: str) -> None:
        self.patches = patches
        self.description = description

    def sample(self, rng: np.random.Generator, batch: int, patch_px: int) -> Pairs:
        """`batch` pairs with their radius maps (model.training.fit.Pairs)."""
        if patch_px != self.patches.settings.patch_px:
            raise ValueError(f"patches are {self.patches.settings.patch_px} px, not {patch_px}")
        items = [self.patches.pair(int(i)) for i in rng.integers(0, 2**62, batch)]
        return Pairs(
            blurry=np.stack([b for b, _, _ in items]),
            sharp=np.stack([s for _, s, _ in items]),
            radius_px=np.stack([r for _, _, r in items]),
        )


def build_pair_source(data: DataSection, seed: int) -> PatchBatches:
    """The training pairs of a run's `[data]` section: prepared photos and/or dead leaves."""
    settings = PatchSettings(
        patch_px=data.patch_px,
        dead_leaves_fraction=data.dead_leaves_fraction,
        blur=BlurDistribution(
            max_radius_median_px=data.max_radius_median_px,
            max_px=data.max_radius_px,
            uniform_fraction=data.uniform_blur_fraction,
        ),
        sensor=SensorModel(
            clean_fraction=data.clean_fraction, jpeg_probability=data.jpeg_probability
        ),
        shapes=KernelShapes() if data.use_lens_shapes else None,
    )
    if not data.cache_dir:
        return PatchBatches(DefocusPatches([], [], 1, settings, seed), "dead leaves only")
    patches = DefocusPatches.from_cache(Path(data.cache_dir), settings, seed)
    description = (
        f"{len(patches.photos)} prepared photos ({len(patches.patches)} ranked patches) from"
        f" {data.cache_dir} and dead leaves ({data.dead_leaves_fraction:.0%} of pairs)"
    )
    return PatchBatches(patches, description)


def model_config(section: ModelSection) -> ModelConfig:
    """The deployable model a run's `[model]` section describes."""
    prior = None
    if section.use_prior:
        prior = PriorConfig(latent_channels=section.prior_channels, steps=section.prior_steps)
    defocus = None
    if section.use_defocus:
        sigmas = tuple(2.0**index for index in range(section.reblur_widths))  # 1, 2, 4, ... px
        defocus = DefocusConfig(
            estimator_width=section.estimator_width,
            estimator_blocks=section.estimator_blocks,
            reblur_sigmas_px=sigmas,
            estimator_context=section.estimator_context,
            radius_temperature=section.radius_temperature,
        )
    return compose(section.preset, prior, defocus)


def initial_restorer(config: TrainConfig) -> Restorer:
    """The model a run starts from: fresh (seeded by the caller) or `model.init_from`'s weights.

    Fine-tuning from a checkpoint keeps its architecture exactly: the checkpoint's config must
    equal the one `config` builds, otherwise the run would silently train a different model than
    its config says. One exception, named in the provenance: a checkpoint without the defocus
    front end may start a run with it (`adopt_without_front_end`), and one whose blur estimator has
    another architecture (same bank) may start a run with the estimator grown or fresh
    (`adopt_other_estimator`).

    Raises:
        TrainConfigError: the checkpoint cannot be read or does not match `config`.
    """
    wanted = model_config(config.model)
    restorer = build_restorer(wanted)
    source = config.model.init_from
    if not source:
        return restorer
    try:
        start = load_restorer(source)
    except (OSError, ValueError) as error:
        raise TrainConfigError(f"model.init_from: {error}") from error
    if start.config.defocus is None and wanted.defocus is not None:
        grown = compose(start.config.network, start.config.prior, wanted.defocus)
        problems = grown.differences(wanted)
        if not problems:
            adopt_without_front_end(restorer, start)
            return restorer
    elif _other_estimator(start.config, wanted):
        adopt_other_estimator(restorer, start)
        return restorer
    else:
        problems = start.config.differences(wanted)
    if problems:
        raise TrainConfigError(
            f"model.init_from: {source} does not match this run's model (checkpoint vs config): "
            + "; ".join(problems)
        )
    restorer.load_state_dict(start.state_dict())
    return restorer


def adopt_without_front_end(restorer: Restorer, start: Restorer) -> None:
    """Start a model with the front end from the weights of one without it.

    Every tensor of `start` is copied. The first convolutions of the network and of the prior's
    encoders read 3 more input channels in `restorer` (the blurry image after the blend, which
    takes the place the blurry image had): their weights for the blend are `start`'s weights for
    the blurry image and the new channels start at zero, so before training the network refines
    the blend exactly as it used to refine the blurry image. The blur estimator starts fresh.
    """
    target = restorer.state_dict()
    for name, weight in start.state_dict().items():
        if target[name].shape == weight.shape:
            target[name] = weight
            continue
        # (out, in * s^2, k, k) after PixelUnshuffle(s): channel c * s^2 + i; inputs 3..5 are new
        grown = torch.zeros_like(target[name])
        block = (grown.shape[1] - weight.shape[1]) // 3 * 3  # 3 * s^2 new unshuffled channels
        grown[:, :block] = weight[:, :block]
        grown[:, 2 * block :] = weight[:, block:]
        target[name] = grown
    restorer.load_state_dict(target)


BANK_FIELDS = ("radii_px", "balances")  # what the network's input (the blend) depends on


def same_bank(start: DefocusConfig, wanted: DefocusConfig) -> bool:
    """Whether two front ends differ in their blur estimator only (the bank is the same, so a
    network trained behind one reads the same kind of blend behind the other)."""
    return all(getattr(start, name) == getattr(wanted, name) for name in BANK_FIELDS)


def _other_estimator(start: ModelConfig, wanted: ModelConfig) -> bool:
    """Whether `start` differs from `wanted` in the blur estimator's architecture alone (its
    radius temperature is no architecture: a run naming another one is refused, by name, rather
    than starting the estimator fresh)."""
    if start.defocus is None or wanted.defocus is None or start.defocus == wanted.defocus:
        return False
    if start.defocus.radius_temperature != wanted.defocus.radius_temperature:
        return False
    return same_bank(start.defocus, wanted.defocus) and (
        compose(start.network, start.prior, wanted.defocus) == wanted
    )


def adopt_other_estimator(restorer: Restorer, start: Restorer) -> None:
    """Start a model from one whose blur estimator has another architecture.

    Every tensor outside the estimator is copied. The estimator is grown when the change only
    adds to it: re-blur widths after the old ones, or the image context (`ImageContext`). Its
    first convolution reads its cues in the order (mean luma, edge energy, one gradient ratio
    per width, the bank's energies), so the new widths' ratios enter with zero weights; the
    context's output layer starts at zero. Either way the estimator scores exactly as `start`'s
    did and what is new comes in only as training finds it useful. Any other change (width,
    blocks, other widths, the context removed) leaves the estimator fresh: stage 0 then trains
    it from scratch.
    """
    if restorer.defocus is None or start.defocus is None:
        raise ValueError("both models need the defocus front end")
    ours, theirs = start.defocus.config, restorer.defocus.config
    old, new = ours.reblur_sigmas_px, theirs.reblur_sigmas_px
    grows = (
        replace(ours, reblur_sigmas_px=new, estimator_context=theirs.estimator_context) == theirs
        and new[: len(old)] == old
        and ours.estimator_context <= theirs.estimator_context
    )
    target = restorer.state_dict()
    for name, weight in start.state_dict().items():
        if name.startswith("defocus.estimator.") and not grows:
            continue
        if target[name].shape == weight.shape:
            target[name] = weight
            continue
        # the estimator's stem, (width, cues, 3, 3) with cues = 2 + widths + R * N
        grown = torch.zeros_like(target[name])
        grown[:, : 2 + len(old)] = weight[:, : 2 + len(old)]
        grown[:, 2 + len(new) :] = weight[:, 2 + len(old) :]
        target[name] = grown
    restorer.load_state_dict(target)


def _output(
    loss: Callable[[Restorer, Batch], stage_fns.Losses],
) -> Callable[[Restorer, Batch, torch.Generator], tuple[Tensor, Tensor]]:
    """A stage loss in `fit`'s (loss, output) form."""

    def run(model: Restorer, batch: Batch, _generator: torch.Generator) -> tuple[Tensor, Tensor]:
        losses = loss(model, batch)
        return losses.total, losses.restored

    return run


def _generated_output(
    loss: Callable[[Restorer, Batch, torch.Generator], stage_fns.Losses],
) -> Callable[[Restorer, Batch, torch.Generator], tuple[Tensor, Tensor]]:
    """A stage loss that draws diffusion noise from the step's generator, in `fit`'s form."""

    def run(model: Restorer, batch: Batch, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        losses = loss(model, batch, generator)
        return losses.total, losses.restored

    return run


def build_stages(config: TrainConfig) -> list[Stage[Restorer]]:
    """The stages `config` asks for (see `model.training.stages`)."""
    optim, stages = config.optim, config.stages
    weight, true_map = stages.radius_weight, stages.true_map_fraction
    result: list[Stage[Restorer]] = []
    deployed = _generated_output(lambda m, b, g: stage_fns.deployed_loss(m, b, weight, g))
    if stages.front_end_steps:
        through = stages.front_end_through_network
        result.append(
            Stage(
                0,
                stages.front_end_steps,
                optim.front_end_lr,
                stage_fns.front_end_parameters,
                deployed
                if through
                else _output(lambda m, b: stage_fns.front_end_loss(m, b, weight)),
                stage_fns.deployed_restore if through else stage_fns.blend_restore,
                deployable=through,
            )
        )
    if stages.stage1_steps:
        with_prior = config.model.use_prior
        result.append(
            Stage(
                1,
                stages.stage1_steps,
                optim.lr,
                stage_fns.stage1_parameters,
                _output(lambda m, b: stage_fns.stage1_loss(m, b, weight, true_map)),
                stage_fns.teacher_restore if with_prior else stage_fns.deployed_restore,
                deployable=not with_prior,
            )
        )
    if stages.stage2_steps:
        fine_tune = stages.stage2_finetune_decoder
        result.append(
            Stage(
                2,
                stages.stage2_steps,
                optim.stage2_lr,
                lambda m: stage_fns.stage2_parameters(m, fine_tune),
                _generated_output(lambda m, b, g: stage_fns.stage2_loss(m, b, g, true_map)),
                stage_fns.deployed_restore,
                deployable=True,
            )
        )
    if stages.deployed_steps:
        result.append(
            Stage(
                3,
                stages.deployed_steps,
                optim.deployed_lr,
                lambda m: stage_fns.deployed_parameters(m, stages.deployed_train_estimator),
                deployed,
                stage_fns.deployed_restore,
                deployable=True,
            )
        )
    return result


def _export(model: Restorer, path: Path, info: dict[str, Any]) -> None:
    save_restorer(path, model, provenance=info)


def hardware_description(device: torch.device) -> str:
    """A one-line description of where training ran (stored in checkpoints and model cards)."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    return (
        f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads"
    )


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    source: PairSource | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    log: Callable[[str], None] = lambda line: None,
) -> FitResult:
    """Train the model `config` describes; see `model.training.fit.fit` for the files written.

    Args:
        config: the run.
        resume: continue from the run's `resume.pt`.
        source: training pairs; None builds the configured pipeline (photos + dead leaves).
        should_stop: polled after each step (the CLI sets it on SIGINT/SIGTERM).
        log: receives progress lines.
    """
    if config.run.threads:
        torch.set_num_threads(config.run.threads)
    try:
        device = resolve_device(config.run.device)
    except ValueError as error:
        raise TrainConfigError(f"run.device: {error}") from error
    torch.manual_seed(config.run.seed)
    # a resumed run takes its weights from resume.pt: its init_from file is not read again
    # (it may have been replaced or removed since, e.g. by shipping this very run over it)
    restorer = (
        build_restorer(model_config(config.model)) if resume else initial_restorer(config)
    ).to(device)
    validation = None
    if source is None:
        source = build_pair_source(config.data, seed=config.run.seed)
        # the same validation pairs for every run of this data, whatever its seed, so that
        # validation numbers compare across runs
        validation = build_pair_source(config.data, seed=config.data.val_seed)
    n_params = sum(p.numel() for p in restorer.parameters())
    log(
        f"model {config.model.preset} (prior {'on' if config.model.use_prior else 'off'},"
        f" defocus front end {'on' if config.model.use_defocus else 'off'}),"
        f" {n_params / 1e6:.2f} M parameters, on {hardware_description(device)}"
    )
    provenance = {
        "hardware": hardware_description(device),
        "torch": torch.__version__,
        "data": getattr(source, "description", type(source).__name__),
    }
    if config.model.init_from:
        provenance["init_from"] = _init_description(config, resume)
    return fit(
        restorer,
        build_stages(config),
        source,
        config,
        _export,
        resume=resume,
        should_stop=should_stop,
        log=log,
        provenance=provenance,
        validation=validation,
    )


def _init_description(config: TrainConfig, resume: bool) -> dict[str, Any]:
    """What a fine-tuning run started from: the file's name and the provenance it carried.

    A resumed run repeats what its start recorded (in its `last.safetensors`, written with every
    resume checkpoint), not what the file holds now.
    """
    last = Path(config.run.out_dir) / "last.safetensors"
    if resume and last.exists():
        recorded = read_checkpoint(last).metadata.get("provenance", {}).get("init_from")
        if recorded is not None:
            return dict(recorded)
    path = config.model.init_from
    try:
        provenance = read_checkpoint(path).metadata.get("provenance", {})
    except (OSError, ValueError) as error:
        raise TrainConfigError(f"model.init_from: {error}") from error
    return {"file": Path(path).name, "provenance": provenance}


def ship(source: str | Path, destination: str | Path) -> None:
    """Copy a training checkpoint as a float16 one to ship (half the bytes).

    The weights are stored in float16 and loaded back into the float32 model, so a shipped file
    restores what its source does up to float16 rounding of the weights. Its provenance is the
    source's plus `"weights_dtype": "float16"` and the source file's name.
    """
    provenance = dict(read_checkpoint(source).metadata.get("provenance", {}))
    provenance |= {"weights_dtype": "float16", "shipped_from": Path(source).name}
    save_restorer(destination, load_restorer(source).half(), provenance=provenance)


def with_estimator(
    source: str | Path, estimator_source: str | Path, destination: str | Path
) -> None:
    """Copy `source` with the blur estimator of `estimator_source` in place of its own.

    Stage 0 trains the estimator alone and stage 1 trains the network beside an estimator of its
    own; this puts an estimator trained in one run in front of a network trained in another (the
    network sees the new estimator's blends only from then on: evaluate before shipping). The
    estimator may have another architecture (the result takes the donor's front-end config) as
    long as the bank is the same. The provenance is `source`'s plus `"estimator_from"`: the
    other file's name and provenance.

    Raises:
        ValueError: either model has no defocus front end, or their banks differ.
    """
    source_model, donor = load_restorer(source), load_restorer(estimator_source)
    if source_model.config.defocus is None or donor.config.defocus is None:
        raise ValueError("both checkpoints need the defocus front end")
    if not same_bank(source_model.config.defocus, donor.config.defocus):
        raise ValueError(
            f"banks differ: {source_model.config.defocus} (model) vs {donor.config.defocus}"
        )
    model = build_restorer(
        compose(source_model.config.network, source_model.config.prior, donor.config.defocus)
    )
    state = {
        name: tensor
        for name, tensor in source_model.state_dict().items()
        if not name.startswith("defocus.estimator.")
    }
    state.update(
        (name, tensor)
        for name, tensor in donor.state_dict().items()
        if name.startswith("defocus.estimator.")
    )
    model.load_state_dict(state)
    provenance = dict(read_checkpoint(source).metadata.get("provenance", {}))
    donor_provenance = read_checkpoint(estimator_source).metadata.get("provenance", {})
    provenance["estimator_from"] = {
        "file": Path(estimator_source).name,
        "provenance": donor_provenance,
    }
    save_restorer(destination, model, provenance=provenance)
