"""Checkpoints: our safetensors format, and the importer for checkpoints of the released code.

Our format is one safetensors file. Tensors are named `network.<param>`, `prior.<param>` and
`defocus.<param>` (the parts of `model.restorer.Restorer`); the safetensors header's string
metadata holds JSON under `format_version`, `model` (the `ModelConfig` dict: the whole
deployable model) and `provenance` (how the weights were made). The model rebuilds from the file
alone and loading never unpickles anything. Files of format 1 (the network's config under
`architecture`, the prior's under `prior`) are still read.

The released code (BasicSR) saves `{"params": state_dict, "params_ema": state_dict}` with
PyTorch's pickle format, sometimes with DataParallel's `module.` prefixes. `convert_released`
reads such a file with `torch.load(weights_only=True)` (plain tensors only) and maps its names
to ours: LayerNorms lose Restormer's `.body` wrapper, `patch_embed.proj2` becomes
`patch_embed.proj`, and the 1x1 convs that we run as `nn.Linear` on token grids drop their
trailing (1, 1) kernel dimensions. Every mismatch is an error naming the keys: never a silent
partial load.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor

from model.config import ModelConfig, SwintormerConfig
from model.swintormer import Swintormer

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)  # 1: "architecture" + "prior" entries instead of "model"
PART_PREFIXES = ("network.", "prior.", "defocus.")
MAX_NAMED_KEYS = 8  # error messages name this many keys of each kind, then count the rest

_LEVEL = r"(?:encoder_level[123]|latent|decoder_level[123]|refinement)\.\d+"
# (released name pattern, replacement, whether a 1x1 conv weight becomes a linear weight)
_RELEASED_KEYS: tuple[tuple[re.Pattern[str], str, bool], ...] = tuple(
    (re.compile(pattern), replacement, is_linear)
    for pattern, replacement, is_linear in (
        (r"patch_embed\.proj2\.weight", "patch_embed.proj.weight", False),
        (rf"({_LEVEL})\.(norm[12])\.body\.(weight|bias)", r"\1.\2.\3", False),
        (
            rf"({_LEVEL}\.attn\.(?:logit_scale|cpb_mlp\.0\.weight|cpb_mlp\.0\.bias"
            r"|cpb_mlp\.2\.weight|qkv_dwconv\.weight|qkv_dwconv\.bias))",
            r"\1",
            False,
        ),
        (
            rf"({_LEVEL}\.(?:attn\.qkv|attn\.project_out|ffn\.project_in|ffn\.project_out)\.)"
            r"(weight|bias)",
            r"\1\2",
            True,
        ),
        (r"((?:down1_2|down2_3|down3_4|up4_3|up3_2|up2_1)\.body\.0\.weight)", r"\1", False),
        (r"((?:reduce_chan_level[23]|skip_conv)\.(?:weight|bias))", r"\1", True),
        (r"(output\.0\.(?:weight|bias))", r"\1", False),
    )
)


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit; the message names the keys."""


@dataclass
class CheckpointFile:
    """What `read_checkpoint` returns: the model's config, its tensors and the metadata."""

    config: ModelConfig
    tensors: dict[str, Tensor]  # named `<part>.<param>`, see PART_PREFIXES
    metadata: dict[str, Any]


def _named(keys: list[str]) -> str:
    shown = ", ".join(keys[:MAX_NAMED_KEYS])
    more = len(keys) - MAX_NAMED_KEYS
    return f"{shown}, ... and {more} more" if more > 0 else shown


def check_state_dict(expected: Mapping[str, Tensor], got: Mapping[str, Tensor], what: str) -> None:
    """Raise `CheckpointError` unless `got` has exactly the keys and shapes of `expected`.

    Args:
        expected: the state_dict of the module that will receive the weights.
        got: the weights.
        what: what is loaded into what, for the message ("x.pth into a Swintormer ...").
    """
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    mismatched = sorted(
        f"{key} (weights {tuple(got[key].shape)}, network {tuple(expected[key].shape)})"
        for key in set(expected) & set(got)
        if got[key].shape != expected[key].shape
    )
    problems = [
        f"{label} ({len(keys)}): {_named(keys)}"
        for label, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", mismatched),
        )
        if keys
    ]
    if problems:
        raise CheckpointError(f"cannot load {what}: " + "; ".join(problems))


def released_key(key: str) -> tuple[str, bool] | None:
    """Our name for a released parameter name, and whether it is a 1x1 conv run as a linear.

    Returns None for a name the released network does not have.
    """
    for pattern, replacement, is_linear in _RELEASED_KEYS:
        if pattern.fullmatch(key):
            return pattern.sub(replacement, key), is_linear
    return None


def map_released_state_dict(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename a released state_dict to our parameter names.

    Args:
        state: released names (optionally with `module.` prefixes) -> tensors.

    Returns:
        Our names -> tensors (1x1 conv weights (O, I, 1, 1) reshaped to (O, I)).

    Raises:
        CheckpointError: names the keys the released network does not have.
    """
    mapped: dict[str, Tensor] = {}
    unknown: list[str] = []
    for key, tensor in state.items():
        name = key.removeprefix("module.")
        found = released_key(name)
        if found is None:
            unknown.append(key)
            continue
        ours, is_linear = found
        if is_linear and tensor.dim() == 4 and tensor.shape[2:] == (1, 1):
            tensor = tensor.flatten(1)
        mapped[ours] = tensor
    if unknown:
        raise CheckpointError(
            f"unknown keys, not in the released network ({len(unknown)}): {_named(sorted(unknown))}"
        )
    return mapped


def to_released_state_dict(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Our state_dict under the released names and shapes: the inverse of the mapping above.

    Exports weights to the released code (and feeds the released-style speed baseline).

    Raises:
        CheckpointError: names our keys that the released network does not have (FiLM).
    """
    released: dict[str, Tensor] = {}
    foreign: list[str] = []
    for key, tensor in state.items():
        name = re.sub(
            r"\.(norm[12])\.", r".\1.body.", key.replace("patch_embed.proj.", "patch_embed.proj2.")
        )
        found = released_key(name)
        if found is None or found[0] != key:
            foreign.append(key)
            continue
        released[name] = tensor[:, :, None, None] if found[1] and tensor.dim() == 2 else tensor
    if foreign:
        raise CheckpointError(f"keys the released network does not have: {_named(sorted(foreign))}")
    return released


def convert_released(path_pth: str | Path, ema: bool) -> dict[str, Tensor]:
    """Read a checkpoint of the released code and return its weights under our names.

    Args:
        path_pth: a BasicSR checkpoint `{"params": ..., "params_ema": ...}` or a bare
            state_dict, saved by `torch.save`; read with `weights_only=True`.
        ema: take `params_ema` (the exponential moving average) instead of `params`.

    Returns:
        Our parameter names -> tensors; pass them to `network_from_state_dict`.
    """
    try:
        raw = torch.load(path_pth, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises pickle and zip errors of several kinds
        raise CheckpointError(
            f"cannot read {path_pth} as a tensors-only checkpoint: {error}"
        ) from error
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"{path_pth} holds a {type(raw).__name__}, not a state_dict")
    wanted = "params_ema" if ema else "params"
    if "params" in raw or "params_ema" in raw:
        if wanted not in raw:
            other = "without --ema" if ema else "with --ema"
            raise CheckpointError(
                f"{path_pth} has no {wanted!r} entry (it has {_named(sorted(map(str, raw)))}); "
                f"convert {other}"
            )
        state = raw[wanted]
    elif ema:
        raise CheckpointError(f"{path_pth} is a bare state_dict: it has no 'params_ema' entry")
    else:
        state = raw
    not_tensors = sorted(str(k) for k, v in state.items() if not isinstance(v, Tensor))
    if not_tensors:
        raise CheckpointError(f"{path_pth}: entries that are not tensors: {_named(not_tensors)}")
    return map_released_state_dict(state)


def network_from_state_dict(
    state: Mapping[str, Tensor], config: SwintormerConfig, what: str = "the weights"
) -> Swintormer:
    """Build `Swintormer(config)` and load `state` into it strictly (eval mode, CPU).

    Raises:
        CheckpointError: missing / unexpected keys or shape mismatches, named.
    """
    network = Swintormer(config)
    target = f"{what} into a Swintormer with config {config.to_dict()}"
    check_state_dict(network.state_dict(), state, target)
    network.load_state_dict(state, strict=True)
    return network.eval()


def save_checkpoint(
    path: str | Path,
    state: Mapping[str, Tensor],
    config: ModelConfig,
    provenance: dict[str, Any] | None = None,
) -> None:
    """Write a model's tensors and config to one safetensors file, atomically.

    Args:
        path: the output file.
        state: the model's state_dict, every key starting with one of `PART_PREFIXES`.
        config: the whole model's config, stored beside the weights.
        provenance: JSON-safe facts about how the weights were made.
    """
    strays = sorted(k for k in state if not k.startswith(PART_PREFIXES))
    if strays:
        raise CheckpointError(f"keys outside {'/'.join(PART_PREFIXES)}: {_named(strays)}")
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    metadata = {
        "format_version": str(FORMAT_VERSION),
        "model": json.dumps(config.to_dict()),
        "provenance": json.dumps(provenance or {}),
    }
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    save_file(tensors, str(partial), metadata=metadata)
    # safetensors creates the file owner-only (0600); weights are shared data (a worker container
    # reading a mounted checkpoint runs as another user), so give them the usual rw-r--r--
    partial.chmod(0o644)
    os.replace(partial, path)


def _read_metadata(raw: dict[str, str] | None, path: Path) -> dict[str, Any]:
    if not raw or "format_version" not in raw or not {"model", "architecture"} & set(raw):
        raise CheckpointError(
            f"{path} is a safetensors file without Swintormer metadata "
            "(format_version, model); save it with save_checkpoint"
        )
    try:
        metadata: dict[str, Any] = {key: json.loads(value) for key, value in raw.items()}
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path}: metadata is not JSON: {error}") from None
    if metadata["format_version"] not in READABLE_VERSIONS:
        raise CheckpointError(
            f"{path} has format_version {metadata['format_version']}; "
            f"this code reads versions {', '.join(map(str, READABLE_VERSIONS))}"
        )
    return metadata


def _model_config(metadata: dict[str, Any], path: Path) -> ModelConfig:
    """The `ModelConfig` of a file of either format."""
    try:
        if metadata["format_version"] == 1:
            return ModelConfig.from_dict(
                {"network": metadata["architecture"], "prior": metadata.get("prior")}
            )
        return ModelConfig.from_dict(metadata["model"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: bad model metadata: {error}") from None


def read_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> CheckpointFile:
    """Read a checkpoint written by `save_checkpoint` (or by format 1).

    Args:
        path: the safetensors file.
        device: where the tensors go.

    Raises:
        CheckpointError: not our format, bad metadata, or tensors outside the known parts.
    """
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = _read_metadata(handle.metadata(), path)
            tensors = {key: handle.get_tensor(key).to(device) for key in handle.keys()}  # noqa: SIM118
    except SafetensorError as error:
        raise CheckpointError(
            f"{path} is not a safetensors checkpoint ({error}); released .pth checkpoints "
            "are imported with `swintormer convert`"
        ) from None
    strays = sorted(k for k in tensors if not k.startswith(PART_PREFIXES))
    if strays:
        raise CheckpointError(f"{path}: keys outside {'/'.join(PART_PREFIXES)}: {_named(strays)}")
    return CheckpointFile(_model_config(metadata, path), tensors, metadata)


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, for provenance records."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
