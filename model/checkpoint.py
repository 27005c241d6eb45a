"""Checkpoints: our safetensors format (save, load, strict state_dict checks).

Our format is one safetensors file. Tensors are named `network.<param>`, `prior.<param>` and
`defocus.<param>` (the parts of `model.restorer.Restorer`); the safetensors header's string
metadata holds JSON under `format_version`, `model` (the `ModelConfig` dict: the whole
deployable model) and `provenance` (how the weights were made). The model rebuilds from the file
alone and loading never unpickles anything. Files of format 1 (the network's config under
`architecture`, the prior's under `prior`) are still read.

Checkpoints of the released code are imported by `model.released`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor

from model.atomic_files import atomic_path
from model.config import ModelConfig, SwintormerConfig
from model.swintormer import Swintormer

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)  # 1: "architecture" + "prior" entries instead of "model"
PART_PREFIXES = ("network.", "prior.", "defocus.")
MAX_NAMED_KEYS = 8  # error messages name this many keys of each kind, then count the rest


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit; the message names the keys."""


@dataclass
class CheckpointFile:
    """What `read_checkpoint` returns: the model's config, its tensors and the metadata."""

    config: ModelConfig
    tensors: dict[str, Tensor]  # named `<part>.<param>`, see PART_PREFIXES
    metadata: dict[str, Any]


def named_keys(keys: list[str]) -> str:
    """`keys` for an error message: the first `MAX_NAMED_KEYS`, then how many more."""
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
        f"{label} ({len(keys)}): {named_keys(keys)}"
        for label, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", mismatched),
        )
        if keys
    ]
    if problems:
        raise CheckpointError(f"cannot load {what}: " + "; ".join(problems))


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
        raise CheckpointError(f"keys outside {'/'.join(PART_PREFIXES)}: {named_keys(strays)}")
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    metadata = {
        "format_version": str(FORMAT_VERSION),
        "model": json.dumps(config.to_dict()),
        "provenance": json.dumps(provenance or {}),
    }
    with atomic_path(path) as partial:
        save_file(tensors, str(partial), metadata=metadata)
        # safetensors creates the file owner-only (0600); weights are shared data (a worker
        # container reading a mounted checkpoint runs as another user): the usual rw-r--r--
        partial.chmod(0o644)


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
        raise CheckpointError(
            f"{path}: keys outside {'/'.join(PART_PREFIXES)}: {named_keys(strays)}"
        )
    return CheckpointFile(_model_config(metadata, path), tensors, metadata)


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, for provenance records."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
