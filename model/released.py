"""Import of checkpoints trained with the authors' released code (BasicSR) into our names.

The released code (BasicSR) saves `{"params": state_dict, "params_ema": state_dict}` with
PyTorch's pickle format, sometimes with DataParallel's `module.` prefixes. `convert_released`
reads such a file with `torch.load(weights_only=True)` (plain tensors only) and maps its names
to ours: LayerNorms lose Restormer's `.body` wrapper, `patch_embed.proj2` becomes
`patch_embed.proj`, and the 1x1 convs that we run as `nn.Linear` on token grids drop their
trailing (1, 1) kernel dimensions. Every mismatch is an error naming the keys: never a silent
partial load.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from model.checkpoint import CheckpointError, named_keys

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
            f"unknown keys, not in the released network ({len(unknown)}): "
            f"{named_keys(sorted(unknown))}"
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
        raise CheckpointError(
            f"keys the released network does not have: {named_keys(sorted(foreign))}"
        )
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
                f"{path_pth} has no {wanted!r} entry (it has {named_keys(sorted(map(str, raw)))}); "
                f"convert {other}"
            )
        state = raw[wanted]
    elif ema:
        raise CheckpointError(f"{path_pth} is a bare state_dict: it has no 'params_ema' entry")
    else:
        state = raw
    not_tensors = sorted(str(k) for k, v in state.items() if not isinstance(v, Tensor))
    if not_tensors:
        raise CheckpointError(
            f"{path_pth}: entries that are not tensors: {named_keys(not_tensors)}"
        )
    return map_released_state_dict(state)
