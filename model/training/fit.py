"""The training loop: stages of AdamW steps with warm-up + cosine LR, clipping, EMA and resume.

The loop knows nothing about Swintormer or the prior. It takes a module, a list of `Stage`s (which
parameters a stage trains and its loss on a batch), a `PairSource` of (blurry, sharp) patches and
an `export` function that writes a shippable checkpoint. `model.training.train` plugs in the real
network, the prior's stage functions and the degradation pipeline; the tests plug in a tiny conv
net.

Exact resumption. Everything random in a step is drawn from generators seeded by `(seed, step)`:
the batch (`numpy` Generator handed to the source) and the diffusion noise (`torch.Generator`
handed to the loss). The learning rate is a pure function of the step. So the resume file only
needs the weights, the EMA, the optimizer (and AMP scaler) state and the step: a run interrupted
at any checkpoint and resumed computes the same weights as an uninterrupted run (bit for bit on
the CPU with the same thread count; the test checks it).
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from model.atomic_files import atomic_path
from model.config import config_differences
from model.devices import autocast
from model.training.config import OBSERVATION_KEYS, TrainConfig, TrainConfigError

RESUME_FORMAT = 1
RESUME_FILE = "resume.pt"


@dataclass(frozen=True)
class Pairs:
    """Training pairs as arrays in [0, 1].

    blurry: float32 (B, p, p, C). sharp: float32 (B, p, p, 3).
    radius_px: float32 (B, p, p) defocus radius of each pixel in pixels, where the source knows it.
    """

    blurry: np.ndarray
    sharp: np.ndarray
    radius_px: np.ndarray | None = None


@dataclass(frozen=True)
class Batch:
    """Training pairs as tensors on the training device.

    blurry: (B, C, p, p). sharp: (B, 3, p, p). radius_px: (B, 1, p, p) or None.
    """

    blurry: Tensor
    sharp: Tensor
    radius_px: Tensor | None = None

    @classmethod
    def of(cls, pairs: Pairs, device: torch.device) -> Batch:
        """Move `pairs` to `device`, channels first."""
        radius = None
        if pairs.radius_px is not None:
            radius = torch.from_numpy(np.ascontiguousarray(pairs.radius_px[:, None])).to(device)
        return cls(_to_tensor(pairs.blurry, device), _to_tensor(pairs.sharp, device), radius)

    def split(self, size: int) -> Iterator[Batch]:
        """Consecutive sub-batches of at most `size` pairs."""
        for start in range(0, self.blurry.shape[0], size):
            window = slice(start, start + size)
            radius = None if self.radius_px is None else self.radius_px[window]
            yield Batch(self.blurry[window], self.sharp[window], radius)


class PairSource(Protocol):
    """Anything that cuts training pairs, drawn with a given generator."""

    def sample(self, rng: np.random.Generator, batch: int, patch_px: int) -> Pairs:
        """Return `batch` pairs of `patch_px` square patches."""
        ...


# the model a run trains: the loop is typed over it, so stage functions need no casts
ModelT = TypeVar("ModelT", bound=nn.Module)
# export(model, path, provenance): write a shippable checkpoint of `model` to `path`.
Export = Callable[[ModelT, Path, dict[str, Any]], None]


@dataclass(frozen=True)
class Stage(Generic[ModelT]):
    """One stage of training.

    Attributes:
        number: stage number, shown in logs and file names (0: the defocus front end alone).
        steps: optimizer steps in this stage.
        peak_lr: learning rate reached after warm-up.
        select_trainable: sets `requires_grad` on the model for this stage and returns the
            parameters the optimizer updates.
        loss: the training loss on one batch.
        restore: how validation restores a batch.
        deployable: whether `restore` is what inference does (best checkpoints count only these).
    """

    number: int
    steps: int
    peak_lr: float
    select_trainable: Callable[[ModelT], list[nn.Parameter]]
    # loss(model, batch, generator) -> (scalar loss, output (B, 3, h, w) for the progress line)
    loss: Callable[[ModelT, Batch, torch.Generator], tuple[Tensor, Tensor]]
    # restore(model, batch, generator) -> restored; the batch's `sharp` only for stages whose
    # validation uses a teacher (stage 1 of the prior), which are then not `deployable`
    restore: Callable[[ModelT, Batch, torch.Generator], Tensor]
    deployable: bool


@dataclass(frozen=True)
class FitResult:
    """What a call to `fit` did."""

    step: int  # steps completed in total (over all calls)
    total_steps: int
    finished: bool  # all stages ran to the end
    best_val_psnr: float  # best validation PSNR of a deployable stage; -inf if none ran
    steps_per_s: float  # optimizer steps per second in this call, excluding validation and I/O
    wall_s: float  # wall time of this call


def lr_at(step: int, steps: int, peak: float, warmup: int, floor: float) -> float:
    """Linear warm-up over `warmup` steps, then cosine decay from `peak` to `floor` at `steps`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, steps - warmup))
    return floor + 0.5 * (peak - floor) * (1.0 + math.cos(math.pi * progress))


def psnr_db(restored: Tensor, sharp: Tensor) -> float:
    """Mean PSNR in dB over a batch (B, C, H, W) of images in [0, 1]."""
    mse = (restored.clamp(0, 1) - sharp).float().pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return float((-10.0 * torch.log10(mse)).mean())


def step_seed(seed: int, step: int) -> int:
    """A 63-bit seed for step `step` of a run seeded `seed` (independent streams per step)."""
    return int(np.random.SeedSequence([seed, step]).generate_state(2, np.uint64)[0] >> 1)


class Ema(Generic[ModelT]):
    """An exponential moving average of a module's weights, kept in a frozen copy.

    The decay ramps up as `min(decay, (1 + n) / (10 + n))` after n updates, so a short run's
    average is not dominated by its random initial weights.
    """

    def __init__(self, model: ModelT, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.model: ModelT = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards `model`'s current weights (trainable ones only)."""
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        pairs = [
            (avg, live)
            for avg, live in zip(self.model.parameters(), model.parameters(), strict=True)
            if live.requires_grad
        ]
        if pairs:
            torch._foreach_lerp_([a for a, _ in pairs], [b.detach() for _, b in pairs], 1 - decay)
        for avg_buf, live_buf in zip(self.model.buffers(), model.buffers(), strict=True):
            avg_buf.copy_(live_buf)


def _atomic_torch_save(obj: dict[str, Any], path: Path) -> None:
    with atomic_path(path) as partial:
        torch.save(obj, partial)


def _atomic_export(export: Export[ModelT], model: ModelT, path: Path, info: dict[str, Any]) -> None:
    with atomic_path(path) as partial:
        export(model, partial, info)


def _to_tensor(images: np.ndarray, device: torch.device) -> Tensor:
    """(B, H, W, 3) float32 numpy -> (B, 3, H, W) tensor on `device`."""
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).to(device)


def _autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager[object]:
    """`run.amp` on CUDA; training on the CPU is always float32."""
    return autocast(device, amp if device.type == "cuda" and amp != "off" else "fp32")


def _config_differences(saved: dict[str, Any], config: TrainConfig) -> list[str]:
    saved_flat = {
        f"{section}.{key}": value
        for section, table in saved.items()
        for key, value in table.items()
    }
    return config_differences(saved_flat, config.flat(), ignore=OBSERVATION_KEYS)


class _Run(Generic[ModelT]):
    """Mutable state of one `fit` call: model, EMA, optimizer, counters."""

    def __init__(self, model: ModelT, stages: Sequence[Stage[ModelT]], config: TrainConfig) -> None:
        self.model = model
        self.stages = list(stages)
        self.config = config
        self.device = next(model.parameters()).device
        self.ema = Ema(model, config.optim.ema_decay) if config.optim.ema_decay > 0 else None
        self.step = 0
        self.optimizer_stage: int | None = None  # the stage whose optimizer is live
        self.optimizer: torch.optim.AdamW | None = None
        self.params: list[nn.Parameter] = []
        self.scaler = torch.amp.GradScaler(
            "cuda", enabled=self.device.type == "cuda" and config.run.amp == "fp16"
        )
        self.best_val_psnr = -math.inf
        self.elapsed_before_s = 0.0  # wall time of earlier calls, restored on resume
        self.call_start = time.perf_counter()

    @property
    def elapsed_s(self) -> float:
        """Wall time of the whole run so far, over all calls."""
        return self.elapsed_before_s + time.perf_counter() - self.call_start

    @property
    def total_steps(self) -> int:
        return sum(stage.steps for stage in self.stages)

    @property
    def averaged(self) -> ModelT:
        """The weights to validate and ship: the EMA when there is one."""
        return self.ema.model if self.ema is not None else self.model

    def stage_at(self, step: int) -> tuple[Stage[ModelT], int]:
        """The stage that step `step` belongs to and the step's index inside it."""
        start = 0
        for stage in self.stages:
            if step < start + stage.steps:
                return stage, step - start
            start += stage.steps
        return self.stages[-1], self.stages[-1].steps

    def enter_stage(self, stage: Stage[ModelT]) -> None:
        """Start `stage`: later stages begin from the averaged weights, with a fresh optimizer."""
        if self.optimizer_stage is not None and self.ema is not None:
            self.model.load_state_dict(self.ema.model.state_dict())
        self.params = stage.select_trainable(self.model)
        if self.ema is not None:
            self.ema.model.requires_grad_(False)
        optim = self.config.optim
        self.optimizer = torch.optim.AdamW(
            self.params,
            lr=stage.peak_lr,
            betas=(optim.beta1, optim.beta2),
            weight_decay=optim.weight_decay,
        )
        self.optimizer_stage = stage.number

    def state(self) -> dict[str, Any]:
        assert self.optimizer is not None
        return {
            "format": RESUME_FORMAT,
            "config": self.config.to_dict(),
            "step": self.step,
            "optimizer_stage": self.optimizer_stage,
            "model": self.model.state_dict(),
            "ema": None if self.ema is None else self.ema.model.state_dict(),
            "ema_updates": 0 if self.ema is None else self.ema.updates,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "best_val_psnr": self.best_val_psnr,
            "elapsed_s": self.elapsed_s,
        }

    def load(self, saved: dict[str, Any], path: Path) -> None:
        if saved.get("format") != RESUME_FORMAT:
            raise TrainConfigError(f"{path}: resume format {saved.get('format')!r} unsupported")
        differences = _config_differences(saved["config"], self.config)
        if differences:
            raise TrainConfigError(
                f"{path} was written by a different configuration (checkpoint vs now): "
                + "; ".join(differences)
            )
        self.model.load_state_dict(saved["model"])
        if self.ema is not None:
            self.ema.model.load_state_dict(saved["ema"])
            self.ema.updates = int(saved["ema_updates"])
        stage = next(s for s in self.stages if s.number == saved["optimizer_stage"])
        # Rebuild the optimizer of the checkpointed stage without the stage-entry weight copy.
        self.optimizer_stage = None
        self.enter_stage(stage)
        assert self.optimizer is not None
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scaler.load_state_dict(saved["scaler"])
        torch.set_rng_state(saved["torch_rng"])
        self.step = int(saved["step"])
        self.best_val_psnr = float(saved["best_val_psnr"])
        self.elapsed_before_s = float(saved["elapsed_s"])


class _StepBatches(torch.utils.data.Dataset[Pairs]):
    """Item `step` is the batch of that step: the source sampled with the step's generator."""

    def __init__(self, source: PairSource, seed: int, batch: int, patch_px: int) -> None:
        self.source, self.seed, self.batch, self.patch_px = source, seed, batch, patch_px

    def __getitem__(self, step: int) -> Pairs:
        rng = np.random.default_rng(step_seed(self.seed, step))
        return self.source.sample(rng, self.batch, self.patch_px)


def _step_batches(
    source: PairSource, config: TrainConfig, start: int, stop: int
) -> Iterable[Pairs]:
    """The batches of steps `start`..`stop - 1` in order, made by `run.data_workers` processes.

    Each batch depends only on (seed, step), so workers change nothing but the speed.
    """
    dataset = _StepBatches(source, config.run.seed, config.data.batch, config.data.patch_px)
    if config.run.data_workers == 0:
        return (dataset[step] for step in range(start, stop))
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=None,
        sampler=range(start, stop),
        num_workers=config.run.data_workers,
        prefetch_factor=4,
        collate_fn=_as_is,  # keep numpy arrays; the loop moves them to the device
    )


def _as_is(pair: Any) -> Any:
    return pair


def _format_eta(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def fit(
    model: ModelT,
    stages: Sequence[Stage[ModelT]],
    source: PairSource,
    config: TrainConfig,
    export: Export[ModelT],
    *,
    resume: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
    log: Callable[[str], None] = lambda line: None,
    provenance: dict[str, Any] | None = None,
    validation: PairSource | None = None,
) -> FitResult:
    """Train `model` through `stages`, writing checkpoints to `config.run.out_dir`.

    Files in the output folder: `resume.pt` (weights, EMA, optimizer, step; for `--resume`),
    `last.safetensors` (the averaged weights at the last checkpoint), `best.safetensors` (best
    validation PSNR among deployable stages) and `stage<N>.safetensors` (end of each stage). All are
    written atomically (temporary file, then rename), so an interruption never leaves a torn file.

    Args:
        model: the module to train, already on its device.
        stages: the stages, run in order.
        source: draws the (blurry, sharp) training pairs.
        config: the run's configuration.
        export: writes a shippable checkpoint of a module.
        resume: continue from `out_dir/resume.pt` (an error when it does not exist).
        should_stop: polled after each step; True checkpoints and returns (e.g. on SIGTERM).
        log: receives progress and validation lines.
        provenance: extra facts stored in exported checkpoints (hardware, data, command).
        validation: draws the validation pairs (with `data.val_seed`); None: `source`.

    Returns:
        What the call did; `finished` is False when it stopped early.
    """
    out_dir = Path(config.run.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = _Run(model, stages, config)
    resume_path = out_dir / RESUME_FILE
    if resume:
        if not resume_path.exists():
            raise TrainConfigError(f"--resume: {resume_path} does not exist")
        run.load(torch.load(resume_path, map_location=run.device, weights_only=True), resume_path)
        log(f"resumed from {resume_path} at step {run.step}/{run.total_steps}")
    else:
        torch.manual_seed(config.run.seed)

    val_pairs = (validation or source).sample(
        np.random.default_rng(config.data.val_seed), config.data.val_pairs, config.data.patch_px
    )
    val = Batch.of(val_pairs, run.device)
    val_input_psnr = psnr_db(val.blurry[:, :3], val.sharp)

    def info(stage: Stage[ModelT]) -> dict[str, Any]:
        return {
            **(provenance or {}),
            "config": config.to_dict(),
            "seed": config.run.seed,
            "step": run.step,
            "stage": stage.number,
            "train_wall_s": round(run.elapsed_s, 1),
        }

    def checkpoint(stage: Stage[ModelT]) -> None:
        _atomic_torch_save(run.state(), resume_path)
        _atomic_export(export, run.averaged, out_dir / "last.safetensors", info(stage))

    def validate(stage: Stage[ModelT]) -> None:
        generator = torch.Generator(run.device).manual_seed(config.data.val_seed)
        averaged = run.averaged
        averaged.eval()
        with torch.no_grad(), _autocast(run.device, config.run.amp):
            restored = torch.cat(
                [
                    stage.restore(averaged, part, generator).float()
                    for part in val.split(config.data.batch)
                ]
            )
        value = psnr_db(restored, val.sharp)
        note = "" if stage.deployable else " (not the deployed path: no best checkpoint)"
        if stage.deployable and value > run.best_val_psnr:
            run.best_val_psnr = value
            _atomic_export(export, averaged, out_dir / "best.safetensors", info(stage))
            note = " new best"
        log(
            f"[val] stage {stage.number} step {run.step} psnr {value:.2f} dB"
            f" (input {val_input_psnr:.2f} dB, {value - val_input_psnr:+.2f}){note}"
        )

    call_start = run.call_start
    train_s = 0.0
    steps_this_call = 0
    last_checkpoint = time.perf_counter()
    window: list[float] = []
    finished = run.step >= run.total_steps
    batches = iter(_step_batches(source, config, run.step, run.total_steps))
    while not finished:
        stage, index = run.stage_at(run.step)
        if run.optimizer_stage != stage.number:
            run.enter_stage(stage)
        assert run.optimizer is not None
        tick = time.perf_counter()
        lr = lr_at(
            index, stage.steps, stage.peak_lr, config.optim.warmup_steps, config.optim.min_lr
        )
        for group in run.optimizer.param_groups:
            group["lr"] = lr
        batch = Batch.of(next(batches), run.device)
        generator = torch.Generator(run.device).manual_seed(step_seed(config.run.seed, run.step))
        model.train()
        with _autocast(run.device, config.run.amp):
            loss, restored = stage.loss(model, batch, generator)
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        if config.optim.grad_clip > 0:
            run.scaler.unscale_(run.optimizer)
            torch.nn.utils.clip_grad_norm_(run.params, config.optim.grad_clip)
        run.scaler.step(run.optimizer)
        run.scaler.update()
        if run.ema is not None:
            run.ema.update(model)
        run.step += 1
        steps_this_call += 1
        elapsed = time.perf_counter() - tick
        train_s += elapsed
        window = [*window[-(config.run.log_every * 2) + 1 :], elapsed]
        finished = run.step >= run.total_steps
        stage_done = index + 1 == stage.steps

        if run.step % config.run.log_every == 0 or finished:
            rate = len(window) / sum(window)
            eta = (run.total_steps - run.step) / rate
            log(
                f"[stage {stage.number}] step {run.step}/{run.total_steps}"
                f" loss {float(loss.detach()):.5f}"
                f" psnr {psnr_db(restored.detach(), batch.sharp):.2f} dB"
                f" lr {lr:.2e} {rate:.2f} it/s eta {_format_eta(eta)}"
            )
        if run.step % config.run.val_every == 0 or stage_done:
            validate(stage)
        if stage_done:
            _atomic_export(
                export, run.averaged, out_dir / f"stage{stage.number}.safetensors", info(stage)
            )
        wall = time.perf_counter() - call_start
        out_of_time = 0 < config.run.max_wall_s <= wall
        stopping = finished or should_stop() or out_of_time
        timed = (
            config.run.checkpoint_every_s > 0
            and time.perf_counter() - last_checkpoint >= config.run.checkpoint_every_s
        )
        if stopping or timed or run.step % config.run.checkpoint_every == 0:
            checkpoint(stage)
            last_checkpoint = time.perf_counter()
            log(f"checkpoint step {run.step} -> {resume_path}")
        if stopping and not finished:
            log(f"stopped at step {run.step}/{run.total_steps}; continue with --resume")
            break

    return FitResult(
        step=run.step,
        total_steps=run.total_steps,
        finished=finished,
        best_val_psnr=run.best_val_psnr,
        steps_per_s=steps_this_call / train_s if train_s > 0 else 0.0,
        wall_s=time.perf_counter() - call_start,
    )
