"""Checkpoints: our safetensors format (save, load, strict state_dict checks).

Our format is one safetensors file. Tensors are named `network.<param>` and `prior.<param>`;
the safetensors header's string metadata holds JSON under `format_version`, `architecture`
(the `SwintormerConfig` dict), `prior` (the prior's config, when there is one) and
`provenance` (how the weights were made). The network rebuilds from the file alone and loading
never unpickles anything.

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
from torch import Tensor, nn

from model.atomic_files import atomic_path
from model.config import SwintormerConfig
from model.swintormer import Swintormer

FORMAT_VERSION = 1
NETWORK_PREFIX = "network."
PRIOR_PREFIX = "prior."
MAX_NAMED_KEYS = 8  # error messages name this many keys of each kind, then count the rest


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit; the message names the keys."""


@dataclass
class LoadedCheckpoint:
    """What `load_checkpoint` returns: the network (eval mode) and the rest of the file."""

    network: Swintormer
    config: SwintormerConfig
    prior_state: dict[str, Tensor] | None
    prior_config: dict[str, Any] | None
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
    network: Swintormer,
    prior: nn.Module | None = None,
    prior_config: dict[str, Any] | None = None,
    provenance: dict[str, Any] | None = None,
) -> None:
    """Write the network (and the prior, if any) to one safetensors file, atomically.

    Args:
        path: the output file.
        network: its config is stored beside its weights.
        prior: the latent prior module, stored under `prior.`.
        prior_config: the prior's JSON-safe config dict.
        provenance: JSON-safe facts about how the weights were made.
    """
    tensors = {NETWORK_PREFIX + k: v for k, v in network.state_dict().items()}
    if prior is not None:
        tensors |= {PRIOR_PREFIX + k: v for k, v in prior.state_dict().items()}
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    metadata = {
        "format_version": str(FORMAT_VERSION),
        "architecture": json.dumps(network.config.to_dict()),
        "provenance": json.dumps(provenance or {}),
    }
    if prior_config is not None:
        metadata["prior"] = json.dumps(prior_config)
    with atomic_path(path) as partial:
        save_file(tensors, str(partial), metadata=metadata)
        # safetensors creates the file owner-only (0600); weights are shared data (a worker
        # container reading a mounted checkpoint runs as another user): the usual rw-r--r--
        partial.chmod(0o644)


def _read_metadata(raw: dict[str, str] | None, path: Path) -> dict[str, Any]:
    if not raw or "format_version" not in raw or "architecture" not in raw:
        raise CheckpointError(
            f"{path} is a safetensors file without Swintormer metadata "
            "(format_version, architecture); save it with save_checkpoint"
        )
    try:
        metadata: dict[str, Any] = {key: json.loads(value) for key, value in raw.items()}
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path}: metadata is not JSON: {error}") from None
    if metadata["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format_version {metadata['format_version']}; "
            f"this code reads version {FORMAT_VERSION}"
        )
    return metadata


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Read a checkpoint written by `save_checkpoint`.

    Args:
        path: the safetensors file.
        device: where the network and the prior's tensors go.

    Returns:
        The network in eval mode on `device`, its config, and the prior's state and config.

    Raises:
        CheckpointError: not our format, or weights that do not fit the stored config.
    """
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = _read_metadata(handle.metadata(), path)
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except SafetensorError as error:
        raise CheckpointError(
            f"{path} is not a safetensors checkpoint ({error}); released .pth checkpoints "
            "are imported with `swintormer convert`"
        ) from None
    strays = sorted(k for k in tensors if not k.startswith((NETWORK_PREFIX, PRIOR_PREFIX)))
    if strays:
        raise CheckpointError(f"{path}: keys outside network./prior.: {named_keys(strays)}")
    try:
        config = SwintormerConfig.from_dict(metadata["architecture"])
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: bad architecture metadata: {error}") from None
    network_state = {
        k.removeprefix(NETWORK_PREFIX): v
        for k, v in tensors.items()
        if k.startswith(NETWORK_PREFIX)
    }
    prior_state = {
        k.removeprefix(PRIOR_PREFIX): v.to(device)
        for k, v in tensors.items()
        if k.startswith(PRIOR_PREFIX)
    }
    network = network_from_state_dict(network_state, config, what=str(path)).to(device)
    return LoadedCheckpoint(
        network=network,
        config=config,
        prior_state=prior_state or None,
        prior_config=metadata.get("prior"),
        metadata=metadata,
    )


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, for provenance records."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
