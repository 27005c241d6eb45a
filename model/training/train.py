"""Training Swintormer and its prior: the pieces `model.training.fit` runs, from a `TrainConfig`.

With the prior (`model.use_prior`), training follows docs/prior.md in two stages, using the
prior's own stage functions (`model.training.stages`):

1. network + teacher encoder, L1 on the image with z = z_gt (the teacher sees the sharp image, so
   stage-1 validation is reported but is not a deployable model);
2. teacher and network encoder frozen; LQ encoder + denoiser learn z_gt through the whole reverse
   chain, the decoder is fine-tuned on the sampled latent (or kept frozen with
   `stages.stage2_finetune_decoder = false`). Validation runs `Restorer.restore`, exactly what
   inference runs, so only stage 2 produces `best.safetensors`.

A fine-tune (`model.init_from`) may skip stage 1 (`stages.stage1_steps = 0`) and run stage 2 alone.

Without the prior it is one stage of plain L1 on the network. Every checkpoint is written with
`save_restorer` (safetensors; the training configuration and seed in its provenance).
"""

from __future__ import annotations

import dataclasses
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.checkpoint import load_checkpoint
from model.config import config_differences, preset
from model.data.pairs import DefocusPatches, PatchSettings
from model.devices import resolve_device
from model.prior import LatentPrior, PriorConfig
from model.restorer import Restorer, load_restorer, save_restorer
from model.swintormer import Swintormer, pad_to_multiple
from model.training.config import DataSection, TrainConfig, TrainConfigError
from model.training.fit import FitResult, PairSource, Stage, StageLoss, StageRestore, fit
from model.training.stages import stage1_loss, stage1_parameters, stage2_loss, stage2_parameters


class PatchBatches:
    """`fit`'s pair source over `DefocusPatches` (model.data.pairs).

    A step's batch is the items at `batch` indices drawn from that step's generator, so it is a
    pure function of (seed, step) like everything else in a step, whatever the worker count.
    """

    def __init__(self, patches: DefocusPatches, description: str) -> None:
        self.patches = patches
        self.description = description

    def sample(
        self, rng: np.random.Generator, batch: int, patch_px: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(blurry, sharp): float32 (batch, patch_px, patch_px, C) and (..., 3) in [0, 1]."""
        if patch_px != self.patches.settings.patch_px:
            raise ValueError(f"patches are {self.patches.settings.patch_px} px, not {patch_px}")
        pairs = [self.patches.pair(int(i)) for i in rng.integers(0, 2**62, batch)]
        return np.stack([b for b, _ in pairs]), np.stack([s for _, s in pairs])


def build_pair_source(data: DataSection, seed: int) -> PatchBatches:
    """The training pairs of a run's `[data]` section: prepared photos and/or dead leaves."""
    settings = PatchSettings(patch_px=data.patch_px, dead_leaves_fraction=data.dead_leaves_fraction)
    if not data.cache_dir:
        return PatchBatches(DefocusPatches([], [], 1, settings, seed), "dead leaves only")
    patches = DefocusPatches.from_cache(Path(data.cache_dir), settings, seed)
    description = (
        f"{len(patches.photos)} prepared photos ({len(patches.patches)} ranked patches) from"
        f" {data.cache_dir} and dead leaves ({data.dead_leaves_fraction:.0%} of pairs)"
    )
    return PatchBatches(patches, description)


def build_restorer(config: TrainConfig) -> Restorer:
    """A freshly initialised network (and prior) for `config` (seeded by the caller)."""
    network_config = preset(config.model.preset)
    if not config.model.use_prior:
        return Restorer(Swintormer(network_config), None)
    network_config = dataclasses.replace(network_config, cond_channels=config.model.prior_channels)
    prior_config = PriorConfig(
        in_channels=network_config.in_channels,
        latent_channels=config.model.prior_channels,
        steps=config.model.prior_steps,
    )
    return Restorer(Swintormer(network_config), LatentPrior(prior_config))


def initial_restorer(config: TrainConfig) -> Restorer:
    """The model a run starts from: fresh (seeded by the caller) or `model.init_from`'s weights.

    Fine-tuning from a checkpoint keeps its architecture exactly: the checkpoint's network and
    prior configs must equal the ones `config` builds, otherwise the run would silently train a
    different model than its config says.

    Raises:
        TrainConfigError: the checkpoint cannot be read or does not match `config`.
    """
    restorer = build_restorer(config)
    source = config.model.init_from
    if not source:
        return restorer
    try:
        start = load_restorer(source)
    except (OSError, ValueError) as error:
        raise TrainConfigError(f"model.init_from: {error}") from error
    problems = _differences("network", start.network.config, restorer.network.config)
    start_prior = None if start.prior is None else start.prior.config
    wanted_prior = None if restorer.prior is None else restorer.prior.config
    problems += _differences("prior", start_prior, wanted_prior)
    if problems:
        raise TrainConfigError(
            f"model.init_from: {source} does not match this run's model (checkpoint vs config): "
            + "; ".join(problems)
        )
    restorer.load_state_dict(start.state_dict())
    return restorer


def _differences(name: str, saved: Any, wanted: Any) -> list[str]:
    """'name.field: saved vs wanted' for each field two config dataclasses (or None) differ in."""
    if saved is None or wanted is None:
        if saved is wanted:
            return []
        return [
            f"{name}: {'none' if saved is None else 'present'} vs"
            f" {'none' if wanted is None else 'present'}"
        ]
    return config_differences(
        {f"{name}.{key}": value for key, value in dataclasses.asdict(saved).items()},
        {f"{name}.{key}": value for key, value in dataclasses.asdict(wanted).items()},
    )


def _parts(model: nn.Module) -> tuple[Swintormer, LatentPrior]:
    restorer = cast(Restorer, model)
    if restorer.prior is None:
        raise TypeError("this stage needs a Restorer with a prior")
    return restorer.network, restorer.prior


def _capturing_network_output(
    loss_of: Callable[[Swintormer, LatentPrior, Tensor, Tensor, torch.Generator], Tensor],
) -> StageLoss:
    """Adapt a prior stage loss to `fit`'s (loss, restored) form.

    The stage functions return only losses; the restored batch (for the progress line's PSNR)
    is taken from the network's forward output by a hook, at no extra cost.
    """

    def loss(
        model: nn.Module, blurry: Tensor, sharp: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        network, prior = _parts(model)
        outputs: list[Tensor] = []
        handle = network.register_forward_hook(lambda _m, _i, out: outputs.append(out))
        try:
            total = loss_of(network, prior, blurry, sharp, generator)
        finally:
            handle.remove()
        return total, outputs[-1]

    return loss


def _stage1_total(
    network: Swintormer, prior: LatentPrior, blurry: Tensor, sharp: Tensor, _g: torch.Generator
) -> Tensor:
    return stage1_loss(network, prior, blurry, sharp).total


def _stage2_total(
    network: Swintormer, prior: LatentPrior, blurry: Tensor, sharp: Tensor, g: torch.Generator
) -> Tensor:
    return stage2_loss(network, prior, blurry, sharp, g).total


def _teacher_restore(
    model: nn.Module, blurry: Tensor, sharp: Tensor, _g: torch.Generator
) -> Tensor:
    network, prior = _parts(model)
    multiple = network.size_multiple
    z_gt = prior.encoder_gt(pad_to_multiple(blurry, multiple), pad_to_multiple(sharp, multiple))
    return network(blurry, cond=z_gt)


def _deployed_restore(
    model: nn.Module, blurry: Tensor, _sharp: Tensor, generator: torch.Generator
) -> Tensor:
    return cast(Restorer, model).restore(blurry, generator=generator)


def _plain_l1(
    model: nn.Module, blurry: Tensor, sharp: Tensor, _g: torch.Generator
) -> tuple[Tensor, Tensor]:
    restored = cast(Restorer, model).network(blurry)
    return F.l1_loss(restored, sharp), restored


def _all_network_parameters(model: nn.Module) -> list[nn.Parameter]:
    network = cast(Restorer, model).network
    network.requires_grad_(True)
    return list(network.parameters())


def _stage1_trainable(model: nn.Module) -> list[nn.Parameter]:
    network, prior = _parts(model)
    prior.requires_grad_(False)  # the LQ encoder and denoiser get no gradient in stage 1
    return stage1_parameters(network, prior)


def _stage2_trainable(finetune_decoder: bool) -> Callable[[nn.Module], list[nn.Parameter]]:
    def select(model: nn.Module) -> list[nn.Parameter]:
        network, prior = _parts(model)
        params = stage2_parameters(network, prior)
        if finetune_decoder:
            return params
        network.requires_grad_(False)
        return [*prior.encoder_lq.parameters(), *prior.denoiser.parameters()]

    return select


def build_stages(config: TrainConfig) -> list[Stage]:
    """The stages `config` asks for (see the module docstring)."""
    optim, stages = config.optim, config.stages
    if not config.model.use_prior:
        plain: StageRestore = _deployed_restore
        return [
            Stage(1, stages.stage1_steps, optim.lr, _all_network_parameters, _plain_l1, plain, True)
        ]
    result = []
    if stages.stage1_steps:
        result.append(
            Stage(
                1,
                stages.stage1_steps,
                optim.lr,
                _stage1_trainable,
                _capturing_network_output(_stage1_total),
                _teacher_restore,
                deployable=False,
            )
        )
    if stages.stage2_steps:
        result.append(
            Stage(
                2,
                stages.stage2_steps,
                optim.stage2_lr,
                _stage2_trainable(stages.stage2_finetune_decoder),
                _capturing_network_output(_stage2_total),
                _deployed_restore,
                deployable=True,
            )
        )
    return result


def _export(model: nn.Module, path: Path, info: dict[str, Any]) -> None:
    save_restorer(path, cast(Restorer, model), provenance=info)


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
    restorer = (build_restorer(config) if resume else initial_restorer(config)).to(device)
    validation = None
    if source is None:
        source = build_pair_source(config.data, seed=config.run.seed)
        # the same validation pairs for every run of this data, whatever its seed, so that
        # validation numbers compare across runs
        validation = build_pair_source(config.data, seed=config.data.val_seed)
    n_params = sum(p.numel() for p in restorer.parameters())
    log(
        f"model {config.model.preset} (prior {'on' if config.model.use_prior else 'off'}),"
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
        recorded = load_checkpoint(last).metadata.get("provenance", {}).get("init_from")
        if recorded is not None:
            return dict(recorded)
    path = config.model.init_from
    try:
        provenance = load_checkpoint(path).metadata.get("provenance", {})
    except (OSError, ValueError) as error:
        raise TrainConfigError(f"model.init_from: {error}") from error
    return {"file": Path(path).name, "provenance": provenance}


def ship(source: str | Path, destination: str | Path) -> None:
    """Copy a training checkpoint as a float16 one to ship (half the bytes).

    The weights are stored in float16 and loaded back into the float32 model, so a shipped file
    restores what its source does up to float16 rounding of the weights. Its provenance is the
    source's plus `"weights_dtype": "float16"` and the source file's name.
    """
    provenance = dict(load_checkpoint(source).metadata.get("provenance", {}))
    provenance |= {"weights_dtype": "float16", "shipped_from": Path(source).name}
    save_restorer(destination, load_restorer(source).half(), provenance=provenance)
