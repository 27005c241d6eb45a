"""The released network's forward pass written the way the released code computes it.

A literal re-implementation of the released network's description, kept as the speed baseline
for `bench/model_speed.py` (the released code itself is not available here). It computes what
`model.swintormer.Swintormer` computes (a test checks both against the golden vectors) but the
way the released code does: NCHW tensors with reshapes around every LayerNorm and attention,
1x1 convolutions, the relative-position bias (CPB-MLP, gather, sigmoid) and the shift mask rebuilt
on every forward, and softmax_one as separate max / exp / sum / divide passes. It loads released
state_dicts (`norm1.body.weight`, 1x1 conv weights) strictly.

Conservative choice: the LayerNorm is `F.layer_norm` (fused) rather than a hand-written
mean/variance, so the baseline is, if anything, faster than the released code.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.config import SwintormerConfig
from model.layers import relative_coords_table, relative_position_index


def softmax_one(x: Tensor) -> Tensor:
    """exp(x - max) / (1 + sum exp(x - max)) over the last dimension, pass by pass."""
    x = x - x.max(dim=-1, keepdim=True).values
    exp_x = torch.exp(x)
    return exp_x / (1 + exp_x.sum(dim=-1, keepdim=True))


def partition(x: Tensor, window: int) -> Tensor:
    """(B, C, H, W) -> (B * nW, C, window, window)."""
    B, C, H, W = x.shape
    x = x.view(B, C, H // window, window, W // window, window)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(-1, C, window, window)


def reverse(windows: Tensor, window: int, H: int, W: int) -> Tensor:
    """(B * nW, C, window, window) -> (B, C, H, W)."""
    C = windows.shape[1]
    x = windows.view(-1, H // window, W // window, C, window, window)
    return x.permute(0, 3, 1, 4, 2, 5).reshape(-1, C, H, W)


def shift_mask(H: int, W: int, window: int, shift: int) -> Tensor:
    """The full Swin mask (nW, N, N), built on the CPU from the 3x3 region labels."""
    labels = torch.zeros(1, 1, H, W)
    count = 0
    for hs in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
        for ws in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
            labels[:, :, hs, ws] = count
            count += 1
    regions = partition(labels, window).flatten(1)  # (nW, N)
    differs = regions[:, None, :] - regions[:, :, None]
    return differs.masked_fill(differs != 0, -100.0).masked_fill(differs == 0, 0.0)


class LayerNorm(nn.Module):
    """Channel LayerNorm on NCHW through a (B, HW, C) reshape, as Restormer's wrapper."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.body = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        x = self.body(x.flatten(2).transpose(1, 2))  # (B, HW, C)
        return x.transpose(1, 2).reshape(B, C, H, W)


class Attention(nn.Module):
    """Mixed spatial + channel window attention, recomputing bias and mask every call."""

    def __init__(self, dim: int, heads: int, window: int, shift: int, bias: bool) -> None:
        super().__init__()
        self.heads, self.window, self.shift = heads, window, shift
        self.logit_scale = nn.Parameter(torch.full((heads, 1, 1), math.log(10.0)))
        self.cpb_mlp = nn.Sequential(
            nn.Linear(2, 512, bias=True), nn.ReLU(inplace=True), nn.Linear(512, heads, bias=False)
        )
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, 3, padding=1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)
        self.coords_table: Tensor
        self.position_index: Tensor
        self.register_buffer("coords_table", relative_coords_table(window), False)
        self.register_buffer("position_index", relative_position_index(window), False)

    def forward(self, x: Tensor) -> Tensor:
        _B, C, H, W = x.shape
        window, shift, heads = self.window, self.shift, self.heads
        N = window * window
        if shift:
            x = torch.roll(x, shifts=(-shift, -shift), dims=(2, 3))
        windows = partition(x, window)
        qkv = self.qkv_dwconv(self.qkv(windows))  # (B*nW, 3C, w, w)
        spatial_qkv, channel_qkv = qkv.chunk(2, dim=1)

        q, k, v = (
            t.reshape(-1, heads, C // 2 // heads, N).transpose(-2, -1)
            for t in spatial_qkv.chunk(3, dim=1)
        )  # (B*nW, heads, N, d)
        attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
        attn = attn * torch.clamp(self.logit_scale, max=math.log(100.0)).exp()
        table = self.cpb_mlp(self.coords_table).view(-1, heads)
        position = table[self.position_index.view(-1)].view(N, N, -1).permute(2, 0, 1)
        attn = attn + 16 * torch.sigmoid(position.contiguous()).unsqueeze(0)
        if shift:
            mask = shift_mask(H, W, window, shift).to(x.device)
            nW = mask.shape[0]
            attn = attn.view(-1, nW, heads, N, N) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, heads, N, N)
        spatial = (softmax_one(attn) @ v).transpose(-2, -1).reshape(-1, C // 2, window, window)

        q, k, v = (t.reshape(-1, heads, C // 2 // heads, N) for t in channel_qkv.chunk(3, dim=1))
        attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
        channel = (softmax_one(attn) @ v).reshape(-1, C // 2, window, window)

        out = self.project_out(torch.cat([spatial, channel], dim=1))
        out = reverse(out, window, H, W)
        if shift:
            out = torch.roll(out, shifts=(shift, shift), dims=(2, 3))
        return out


class FeedForward(nn.Module):
    def __init__(self, dim: int, factor: float, bias: bool) -> None:
        super().__init__()
        hidden = int(dim * factor)
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        x1, x2 = self.project_in(x).chunk(2, dim=1)
        return self.project_out(x1 * x2)


class Block(nn.Module):
    def __init__(
        self, dim: int, heads: int, window: int, shift: int, factor: float, bias: bool
    ) -> None:
        super().__init__()
        self.norm1 = LayerNorm(dim)
        self.attn = Attention(dim, heads, window, shift, bias)
        self.norm2 = LayerNorm(dim)
        self.ffn = FeedForward(dim, factor, bias)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class Sample(nn.Module):
    """Down (conv C -> C/2, PixelUnshuffle) or up (conv C -> 2C, PixelShuffle)."""

    def __init__(self, dim: int, down: bool) -> None:
        super().__init__()
        out = dim // 2 if down else dim * 2
        shuffle = nn.PixelUnshuffle(2) if down else nn.PixelShuffle(2)
        self.body = nn.Sequential(nn.Conv2d(dim, out, 3, padding=1, bias=False), shuffle)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class PatchEmbed(nn.Module):
    def __init__(self, in_channels: int, dim: int) -> None:
        super().__init__()
        self.unshuffle = nn.PixelUnshuffle(2)
        self.proj2 = nn.Conv2d(in_channels * 4, dim, 3, padding=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj2(self.unshuffle(x))


class ReleasedStyleSwintormer(nn.Module):
    """The released network, computed the released way; inputs must be size multiples."""

    def __init__(self, config: SwintormerConfig) -> None:
        super().__init__()
        c, bias, f = config.dim, config.bias, config.ffn_factor
        wins, blocks, heads = config.level_windows, config.num_blocks, config.heads

        def level(dim: int, depth: int, head: int, window: int) -> nn.Sequential:
            return nn.Sequential(
                *(Block(dim, head, window, (window // 2) * (i % 2), f, bias) for i in range(depth))
            )

        self.patch_embed = PatchEmbed(config.in_channels, c)
        self.encoder_level1 = level(c, blocks[0], heads[0], wins[0])
        self.down1_2 = Sample(c, down=True)
        self.encoder_level2 = level(2 * c, blocks[1], heads[1], wins[1])
        self.down2_3 = Sample(2 * c, down=True)
        self.encoder_level3 = level(4 * c, blocks[2], heads[2], wins[2])
        self.down3_4 = Sample(4 * c, down=True)
        self.latent = level(8 * c, blocks[3], heads[3], wins[3])
        self.up4_3 = Sample(8 * c, down=False)
        self.reduce_chan_level3 = nn.Conv2d(8 * c, 4 * c, 1, bias=bias)
        self.decoder_level3 = level(4 * c, blocks[2], heads[2], wins[2])
        self.up3_2 = Sample(4 * c, down=False)
        self.reduce_chan_level2 = nn.Conv2d(4 * c, 2 * c, 1, bias=bias)
        self.decoder_level2 = level(2 * c, blocks[1], heads[1], wins[1])
        self.up2_1 = Sample(2 * c, down=False)
        self.decoder_level1 = level(2 * c, blocks[0], heads[0], wins[0])
        self.refinement = level(2 * c, config.num_refinement_blocks, heads[0], wins[0])
        self.skip_conv = nn.Conv2d(c, 2 * c, 1, bias=bias)
        self.output = nn.Sequential(
            nn.Conv2d(2 * c, 12, 3, padding=1, bias=bias), nn.PixelShuffle(2)
        )

    def forward(self, image: Tensor) -> Tensor:
        """(B, in, H, W) in [0, 1], H and W multiples of the size multiple -> (B, 3, H, W)."""
        x = image * 2 - 1
        stem = self.patch_embed(x)
        enc1 = self.encoder_level1(stem)
        enc2 = self.encoder_level2(self.down1_2(enc1))
        enc3 = self.encoder_level3(self.down2_3(enc2))
        latent = self.latent(self.down3_4(enc3))
        dec3 = self.decoder_level3(
            self.reduce_chan_level3(torch.cat([self.up4_3(latent), enc3], 1))
        )
        dec2 = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(dec3), enc2], 1)))
        dec1 = self.decoder_level1(torch.cat([self.up2_1(dec2), enc1], 1))
        out = self.refinement(dec1) + self.skip_conv(stem)
        return (self.output(out) + x[:, :3] + 1) / 2
