"""The Swintormer network: a four-level U-shaped transformer for image deblurring.

Re-implemented from the description of the authors' released network (Chen et al., 2024, arXiv
2401.05907; docs/model.md). With `cond=None` its numerics are those of the released network, which a
golden test checks to 1e-5. Any input size works: the image is reflect-padded to
`size_multiple`, restored and cropped back.

Data flow (C = config.dim; features are (B, H, W, C) token grids, see `model.layers`):

    image in [0, 1] -> 2x - 1 -> PixelUnshuffle(2) + 3x3 conv          stem    C    H/2
    encoder 1 -> down -> encoder 2 -> down -> encoder 3 -> down -> latent   C..8C  H/2..H/16
    up ++ enc3 -> 1x1 -> decoder 3 -> up ++ enc2 -> 1x1 -> decoder 2 -> up ++ enc1
    -> decoder 1 (2C, no reduction) -> refinement (2C) -> + skip(stem) -> 3x3 conv, PixelShuffle
    -> + input[:3] -> (x + 1) / 2

Conditioning hook (the prior, `model.prior`): with `config.cond_channels > 0`, a latent
z (B, cond_channels, H_pad/16, W_pad/16) modulates each decoder level and the refinement stage by
FiLM: a 1x1 conv maps z to (gamma, beta) at that level's width, bilinearly resized to its
resolution, and every block applies x * (1 + gamma) + beta to its normalised inputs. The FiLM
convs start at zero, so a freshly added hook leaves the network's output unchanged.

Parameter names follow the released checkpoint (see `model.checkpoint` for the few renames);
stage-2 training freezes the encoder by prefix: `ENCODER_PREFIXES`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.config import LATENT_STRIDE, SwintormerConfig
from model.layers import (
    Downsample,
    FiLM,
    PatchEmbed,
    Upsample,
    to_channels_first,
    to_tokens,
    transformer_level,
)

ENCODER_PREFIXES: tuple[str, ...] = (
    "patch_embed",
    "encoder_level1",
    "encoder_level2",
    "encoder_level3",
    "down1_2",
    "down2_3",
    "down3_4",
    "latent",
)


def pad_to_size(image: Tensor, height: int, width: int) -> Tensor:
    """Reflect-pad the bottom and right of `image` to at least `height` x `width`.

    Padding wider than the image is done in several reflections; a side of one pixel, which
    cannot be reflected, is replicated.

    Args:
        image: (B, C, H, W).
        height: minimum output height.
        width: minimum output width.

    Returns:
        (B, C, max(H, height), max(W, width)).
    """
    for dim, target in ((-2, height), (-1, width)):
        while image.shape[dim] < target:
            size = image.shape[dim]
            step = min(target - size, max(size - 1, 1))
            pad = (0, step, 0, 0) if dim == -1 else (0, 0, 0, step)
            image = F.pad(image, pad, mode="reflect" if size > 1 else "replicate")
    return image


def pad_to_multiple(image: Tensor, multiple: int) -> Tensor:
    """Reflect-pad (B, C, H, W) to (B, C, ceil(H / m) * m, ceil(W / m) * m), m = `multiple`."""
    H, W = image.shape[-2:]
    return pad_to_size(image, -(-H // multiple) * multiple, -(-W // multiple) * multiple)


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear | nn.Conv2d):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class Swintormer(nn.Module):
    """The Swintormer deblurring network (released architecture, any input size)."""

    def __init__(self, config: SwintormerConfig) -> None:
        super().__init__()
        self.config = config
        dim, bias, ffn = config.dim, config.bias, config.ffn_factor
        w1, w2, w3, w4 = config.level_widths
        win1, win2, win3, win4 = config.level_windows
        blocks, heads = config.num_blocks, config.heads

        self.patch_embed = PatchEmbed(config.in_channels, dim)
        self.encoder_level1 = transformer_level(w1, blocks[0], heads[0], win1, ffn, bias)
        self.down1_2 = Downsample(w1)
        self.encoder_level2 = transformer_level(w2, blocks[1], heads[1], win2, ffn, bias)
        self.down2_3 = Downsample(w2)
        self.encoder_level3 = transformer_level(w3, blocks[2], heads[2], win3, ffn, bias)
        self.down3_4 = Downsample(w3)
        self.latent = transformer_level(w4, blocks[3], heads[3], win4, ffn, bias)

        self.up4_3 = Upsample(w4)
        self.reduce_chan_level3 = nn.Linear(w4, w3, bias=bias)
        self.decoder_level3 = transformer_level(w3, blocks[2], heads[2], win3, ffn, bias)
        self.up3_2 = Upsample(w3)
        self.reduce_chan_level2 = nn.Linear(w3, w2, bias=bias)
        self.decoder_level2 = transformer_level(w2, blocks[1], heads[1], win2, ffn, bias)
        self.up2_1 = Upsample(w2)
        # decoder level 1 keeps the concatenated width 2C (no reduction), with level 1's heads
        self.decoder_level1 = transformer_level(2 * dim, blocks[0], heads[0], win1, ffn, bias)
        self.refinement = transformer_level(
            2 * dim, config.num_refinement_blocks, heads[0], win1, ffn, bias
        )
        self.skip_conv = nn.Linear(dim, 2 * dim, bias=bias)
        head = nn.Conv2d(2 * dim, 4 * 3, kernel_size=3, padding=1, bias=bias)
        self.output = nn.Sequential(head, nn.PixelShuffle(2))
        # FiLM for decoder levels 3, 2, 1 and the refinement stage, in that order
        film_widths = (w3, w2, 2 * dim, 2 * dim) if config.cond_channels else ()
        films = [nn.Conv2d(config.cond_channels, 2 * width, 1) for width in film_widths]
        self.film = nn.ModuleList(films) if films else None

        self.apply(_init_weights)
        head.reset_parameters()  # the head conv keeps PyTorch's default init, as released
        for conv in films:  # zero FiLM: adding the hook leaves the output unchanged
            for param in conv.parameters():
                nn.init.zeros_(param)

    @property
    def size_multiple(self) -> int:
        """Inputs are padded to multiples of this (256 for the released windows)."""
        return self.config.size_multiple

    def pad(self, image: Tensor) -> Tensor:
        """Reflect-pad (B, C, H, W) to the network's input multiple, as `forward` does."""
        return pad_to_multiple(image, self.size_multiple)

    def padded_size(self, h: int, w: int) -> tuple[int, int]:
        """(H_pad, W_pad): the size an h x w input is padded to."""
        m = self.size_multiple
        return -(-h // m) * m, -(-w // m) * m

    def latent_grid(self, h: int, w: int) -> tuple[int, int]:
        """(H_pad/16, W_pad/16): the grid of the `cond` latent for an h x w input."""
        h_pad, w_pad = self.padded_size(h, w)
        return h_pad // LATENT_STRIDE, w_pad // LATENT_STRIDE

    def forward(self, image: Tensor, cond: Tensor | None = None) -> Tensor:
        """Restore a batch of images.

        Args:
            image: (B, in_channels, H, W) in [0, 1], any H and W.
            cond: optional prior latent (B, cond_channels, H_pad/16, W_pad/16), see
                `latent_grid`; None gives the released network's numerics.

        Returns:
            (B, 3, H, W), not clamped.
        """
        if image.dim() != 4 or image.shape[1] != self.config.in_channels:
            raise ValueError(
                f"expected (B, {self.config.in_channels}, H, W) images, got {tuple(image.shape)}"
            )
        H, W = image.shape[-2:]
        x = self.pad(image) * 2 - 1  # (B, in, H_pad, W_pad)
        films = self._films(cond, x)

        stem = self.patch_embed(x)  # (B, H/2, W/2, C)
        enc1 = _run(self.encoder_level1, stem)
        enc2 = _run(self.encoder_level2, self.down1_2(enc1))  # (B, H/4, W/4, 2C)
        enc3 = _run(self.encoder_level3, self.down2_3(enc2))  # (B, H/8, W/8, 4C)
        latent = _run(self.latent, self.down3_4(enc3))  # (B, H/16, W/16, 8C)

        dec3 = self.reduce_chan_level3(torch.cat([self.up4_3(latent), enc3], dim=-1))
        dec3 = _run(self.decoder_level3, dec3, films[0])
        dec2 = self.reduce_chan_level2(torch.cat([self.up3_2(dec3), enc2], dim=-1))
        dec2 = _run(self.decoder_level2, dec2, films[1])
        dec1 = torch.cat([self.up2_1(dec2), enc1], dim=-1)  # (B, H/2, W/2, 2C)
        dec1 = _run(self.decoder_level1, dec1, films[2])
        out = _run(self.refinement, dec1, films[3]) + self.skip_conv(stem)

        out = self.output(to_channels_first(out)) + x[:, :3]  # (B, 3, H_pad, W_pad)
        return ((out + 1) / 2)[:, :, :H, :W]

    def _films(self, cond: Tensor | None, x: Tensor) -> list[FiLM | None]:
        """(gamma, beta) token grids for decoder levels 3, 2, 1 and refinement, or Nones."""
        if cond is None:
            return [None] * 4
        if self.film is None:
            raise ValueError("this network has no conditioning hook (config.cond_channels == 0)")
        B, _, H_pad, W_pad = x.shape
        expected = (B, self.config.cond_channels, H_pad // LATENT_STRIDE, W_pad // LATENT_STRIDE)
        if tuple(cond.shape) != expected:
            raise ValueError(f"expected cond of shape {expected}, got {tuple(cond.shape)}")
        films: list[FiLM | None] = []
        for conv, stride in zip(self.film, (8, 4, 2, 2), strict=True):
            size = (H_pad // stride, W_pad // stride)
            params = F.interpolate(conv(cond), size=size, mode="bilinear", align_corners=False)
            gamma, beta = to_tokens(params).chunk(2, dim=-1)  # each (B, h, w, width)
            films.append((gamma, beta))
        return films


def _run(level: nn.ModuleList, x: Tensor, film: FiLM | None = None) -> Tensor:
    """Apply a level's blocks in order: (B, H, W, C) -> (B, H, W, C)."""
    for block in level:
        x = block(x, film)
    return x
