"""Size and cost of a Swintormer configuration: parameters and multiply-accumulates (MACs).

Counts come from `torch.utils.flop_counter` on the `meta` device (no memory, no time; on the CPU
the counter would count `scaled_dot_product_attention` as 0, on `meta` every op is seen), one
MAC = 2 FLOPs. The network runs in training mode while counted, so the per-forward work is that
of the released code (which rebuilds the position bias each call; ours caches it in eval mode).

Three totals, because papers disagree on what to count:
    total:       convolutions, linear layers and the attention matmuls (Q K^T, A V).
    conv_linear: convolutions and linear layers only.
    thop:        conv_linear plus 4 per LayerNorm output element, which is how the `thop`
                 package counts; for `paper` at 1x6x256x256 it gives the authors' figure,
                 28,219,645,952, exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from model.config import SwintormerConfig
from model.swintormer import Swintormer

_CONV_LINEAR = (torch.ops.aten.convolution, torch.ops.aten.mm, torch.ops.aten.addmm)
THOP_OPS_PER_LAYERNORM_ELEMENT = 4  # thop: 2 per element for normalising, x2 with an affine


@dataclass(frozen=True)
class NetworkProfile:
    """Parameters and MACs of one configuration at one input size (batch 1)."""

    parameters: int
    macs_total: int  # conv + linear + attention matmuls
    macs_conv_linear: int  # conv + linear only
    macs_thop: int  # conv + linear + 4 per LayerNorm element (thop's convention)


def profile_network(config: SwintormerConfig, height: int, width: int) -> NetworkProfile:
    """Count parameters and MACs of `Swintormer(config)` for a 1 x in x height x width input."""
    with torch.device("meta"):
        network = Swintormer(config).train()
        image = torch.empty(1, config.in_channels, height, width)
    layernorm_elements = 0

    def count_layernorm(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        nonlocal layernorm_elements
        layernorm_elements += output.numel()

    hooks = [
        module.register_forward_hook(count_layernorm)
        for module in network.modules()
        if isinstance(module, nn.LayerNorm)
    ]
    with FlopCounterMode(display=False) as counter:
        network(image)
    for hook in hooks:
        hook.remove()
    flops = counter.get_flop_counts()["Global"]
    conv_linear = sum(flops.get(op, 0) for op in _CONV_LINEAR) // 2
    return NetworkProfile(
        parameters=sum(p.numel() for p in network.parameters()),
        macs_total=sum(flops.values()) // 2,
        macs_conv_linear=conv_linear,
        macs_thop=conv_linear + THOP_OPS_PER_LAYERNORM_ELEMENT * layernorm_elements,
    )
