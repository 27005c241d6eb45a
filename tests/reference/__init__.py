"""Reference outputs of the authors' released code, kept in the repository so the suite stands
alone: the faithfulness tests run from a fresh clone and never skip.

    released_tiny_golden.npz         the released tiny network's state_dict ('param/<name>'), an
                                     'input' and 'output' = released forward(input), float32, CPU
    released_tiny_golden.json        its constructor arguments and the shapes
    released_state_dict_shapes.json  name -> shape of the released full-size state_dict
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from model.config import SwintormerConfig

REFERENCE_DIR = Path(__file__).resolve().parent
# the constructor arguments of the released tiny network in released_tiny_golden.json
GOLDEN_CONFIG = SwintormerConfig(
    in_channels=6,
    dim=8,
    num_blocks=(1, 2, 1, 2),
    num_refinement_blocks=2,
    heads=(1, 2, 2, 4),
    ffn_factor=2.66,
    bias=False,
    window_size=4,
)


def load_golden() -> dict[str, np.ndarray]:
    """The released tiny network's state_dict ('param/<name>'), 'input' and 'output'."""
    with np.load(REFERENCE_DIR / "released_tiny_golden.npz") as arrays:
        return {name: arrays[name] for name in arrays.files}


def golden_description() -> dict[str, Any]:
    """released_tiny_golden.json: the released constructor arguments and the shapes."""
    description: dict[str, Any] = json.loads(
        (REFERENCE_DIR / "released_tiny_golden.json").read_text()
    )
    return description


def released_shapes() -> dict[str, Any]:
    """released_state_dict_shapes.json: 'state_dict_shapes' (name -> shape), 'num_parameters'."""
    shapes: dict[str, Any] = json.loads(
        (REFERENCE_DIR / "released_state_dict_shapes.json").read_text()
    )
    return shapes


def released_state(golden: dict[str, np.ndarray]) -> dict[str, Tensor]:
    """The golden state_dict as tensors under the released names."""
    return {
        name.removeprefix("param/"): torch.from_numpy(array)
        for name, array in golden.items()
        if name.startswith("param/")
    }
