"""Building blocks of the Swintormer network: mixed window attention, gated feed-forward, block.

Swintormer (Chen et al., 2024, "Swintormer: image deblurring with a latent diffusion prior",
arXiv 2401.05907) mixes Swin-V2 shifted-window attention over pixels with Restormer's transposed
(channel) attention computed inside each window. This module re-implements the blocks of the
authors' released network (docs/model.md says what differs in how it computes them).

Layout: inside the transformer levels features are token grids (B, H, W, C), contiguous. Linear
layers and LayerNorm then act on the last dimension without copies, and `tokens.permute(0, 3, 1,
2)` is an NCHW view in channels-last memory that the 3x3 convolutions take as it is.

Speed (inference): the relative-position bias is cached while the CPB-MLP's parameters are
unchanged, the shift masks are built once per (window, shift, device, dtype) and added only to
the last row and column of windows (every other window's mask is zero), and `softmax_one` runs
as the fused softmax kernel plus a per-row factor applied to the much smaller product with V.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CPB_HIDDEN = 512  # width of the continuous position bias MLP (Swin-V2)
MAX_LOGIT_SCALE = math.log(100.0)  # Swin-V2 clamps the cosine-attention temperature here
MASK_VALUE = -100.0  # additive mask between tokens from different regions of a shifted window
NORM_EPS = 1e-12  # F.normalize's floor on the norm
# On the CPU, attention and feed-forward run on chunks of about this many tokens: their
# intermediates then stay in cache and below glibc's 32 MB mmap threshold (a fresh mmap per
# call costs page faults); see the 4-tile batch in bench/model_speed.py.
CPU_CHUNK_TOKENS = 2048

FiLM = tuple[Tensor, Tensor]  # (gamma, beta), each (B, H, W, C) or broadcastable to it


def window_partition(x: Tensor, window: int) -> Tensor:
    """Cut a token grid into non-overlapping windows.

    Args:
        x: (B, H, W, C) with H and W multiples of `window`.
        window: window side in pixels.

    Returns:
        (B * H/window * W/window, window * window, C); windows in row-major order.
    """
    B, H, W, C = x.shape
    x = x.view(B, H // window, window, W // window, window, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, C)


def window_reverse(windows: Tensor, window: int, H: int, W: int) -> Tensor:
    """Inverse of `window_partition`: (B * nW, window * window, C) -> (B, H, W, C)."""
    C = windows.shape[-1]
    x = windows.view(-1, H // window, W // window, window, window, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, H, W, C)


def attend_softmax_one(logits: Tensor, values: Tensor) -> Tensor:
    """`softmax_one(logits) @ values` as the released code defines softmax_one.

    softmax_one(a) = exp(a - m) / (1 + sum(exp(a - m))) with m the row maximum: rows sum to a
    value in [0.5, 1). Since max(softmax(a)) = 1 / sum(exp(a - m)), softmax_one(a) equals
    softmax(a) / (1 + max(softmax(a))): one fused softmax, one row maximum, and the row factor
    applied after the product, where it touches (..., N, d) values instead of (..., N, N).

    Args:
        logits: (..., N, M).
        values: (..., M, d).

    Returns:
        (..., N, d).
    """
    probs = torch.softmax(logits, dim=-1)
    return (probs @ values) / (1 + probs.amax(dim=-1, keepdim=True))


def relative_coords_table(window: int) -> Tensor:
    """Swin-V2 log-spaced relative coordinates: ((2w - 1)^2, 2), float32.

    Each coordinate d in [-(w-1), w-1] maps to sign(8d/(w-1)) * log2(1 + |8d/(w-1)|) / log2(8).
    """
    d = torch.arange(-(window - 1), window, dtype=torch.float32) / (window - 1) * 8
    grid = torch.stack(torch.meshgrid(d, d, indexing="ij"), dim=-1).reshape(-1, 2)
    return torch.sign(grid) * torch.log2(grid.abs() + 1.0) / math.log2(8)


def relative_position_index(window: int) -> Tensor:
    """Index into the relative-coordinate table for each pair of tokens: (N, N), N = w * w."""
    axis = torch.arange(window)
    coords = torch.stack(torch.meshgrid(axis, axis, indexing="ij")).flatten(1)  # (2, N)
    rel = coords[:, :, None] - coords[:, None, :] + (window - 1)  # (2, N, N), in [0, 2w-2]
    return rel[0] * (2 * window - 1) + rel[1]


def shift_masks(
    window: int, shift: int, device: torch.device, dtype: torch.dtype
) -> tuple[Tensor, Tensor, Tensor]:
    """Additive Swin shift masks (N, N) for the windows that need one.

    After a cyclic shift by `shift`, only windows in the last row and the last column of the
    grid hold pixels from different image regions; every other window's mask is zero. The mask
    of a last-row window depends only on the token rows, that of a last-column window only on
    the columns, and the corner window combines both. Built once per key, never per forward;
    under `torch.compile` they are traced into the graph instead (constants the compiler
    folds), since Dynamo does not trace through a cache.

    Returns:
        (last_row, last_column, corner), each (N, N) with 0 or MASK_VALUE.
    """
    if torch.compiler.is_compiling():
        return _build_shift_masks(window, shift, device, dtype)
    return _cached_shift_masks(window, shift, device, dtype)


@functools.lru_cache(maxsize=64)
def _cached_shift_masks(
    window: int, shift: int, device: torch.device, dtype: torch.dtype
) -> tuple[Tensor, Tensor, Tensor]:
    # normal tensors even when first built in inference mode, so training can use them too
    with torch.inference_mode(False), torch.no_grad():
        return _build_shift_masks(window, shift, device, dtype)


def _build_shift_masks(
    window: int, shift: int, device: torch.device, dtype: torch.dtype
) -> tuple[Tensor, Tensor, Tensor]:
    lower = (torch.arange(window, device=device) >= window - shift).long()  # (w,) region
    row_region = lower[:, None].expand(window, window).flatten()  # (N,) by token row
    col_region = lower[None, :].expand(window, window).flatten()  # (N,) by token column

    def mask(region: Tensor) -> Tensor:
        differs = region[:, None] != region[None, :]
        return torch.zeros(differs.shape, dtype=dtype, device=device).masked_fill(
            differs, MASK_VALUE
        )

    return mask(row_region), mask(col_region), mask(2 * row_region + col_region)


def masked_windows(first: int, count: int, rows: int, cols: int) -> list[tuple[slice, int]]:
    """The windows among `first`..`first + count - 1` that need a shift mask.

    Windows are numbered row-major over a (B, rows, cols) grid, as `window_partition` orders
    them. Returns (slice into the `count` windows, kind) pairs; kind indexes `shift_masks`:
    0 = last row (corner excluded), 1 = last column (corner excluded), 2 = corner.
    """
    found: list[tuple[slice, int]] = []
    per_image = rows * cols
    for image in range(first // per_image, (first + count - 1) // per_image + 1):
        top_left = image * per_image - first
        last_row = top_left + (rows - 1) * cols
        candidates = (
            (last_row, last_row + cols - 1, 1, 0),
            (top_left + cols - 1, last_row, cols, 1),
            (last_row + cols - 1, last_row + cols, 1, 2),
        )
        for start, stop, step, kind in candidates:
            if start < 0:  # first index of the progression inside the chunk
                start += ((-start + step - 1) // step) * step
            stop = min(stop, count)
            if start < stop:
                found.append((slice(start, stop, step), kind))
    return found


class MixedAttention(nn.Module):
    """Shifted-window attention with a spatial (Swin-V2) and a channel (MDTA) branch.

    One 1x1 conv + per-window 3x3 depthwise conv produce 3C channels: the first 3C/2 are q, k, v
    of the spatial branch (cosine attention over the w*w pixels of a window, learned temperature,
    continuous position bias, shift mask), the last 3C/2 those of the channel branch (transposed
    attention over channels inside the window, no temperature). Both use `softmax_one`; their
    outputs are concatenated and projected back to C.
    """

    def __init__(self, dim: int, heads: int, window: int, shift: int, bias: bool) -> None:
        super().__init__()
        self.heads = heads
        self.window = window
        self.shift = shift
        self.logit_scale = nn.Parameter(torch.full((heads, 1, 1), math.log(10.0)))
        self.cpb_mlp = nn.Sequential(
            nn.Linear(2, CPB_HIDDEN, bias=True),
            nn.ReLU(inplace=True),
            nn.Linear(CPB_HIDDEN, heads, bias=False),
        )
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        self.qkv_dwconv = nn.Conv2d(
            3 * dim, 3 * dim, kernel_size=3, padding=1, groups=3 * dim, bias=bias
        )
        self.project_out = nn.Linear(dim, dim, bias=bias)
        self.relative_coords_table: Tensor
        self.relative_position_index: Tensor
        self.register_buffer("relative_coords_table", relative_coords_table(window), False)
        self.register_buffer("relative_position_index", relative_position_index(window), False)
        self._bias_cache: tuple[tuple[object, ...], Tensor] | None = None

    def train(self, mode: bool = True) -> MixedAttention:
        """Switch mode and drop the cached position bias (training recomputes it each call)."""
        self._bias_cache = None
        return super().train(mode)

    def compute_position_bias(self) -> Tensor:
        """16 * sigmoid(CPB(relative coords))[index]: (heads, N, N)."""
        N = self.window * self.window
        table = self.cpb_mlp(self.relative_coords_table)  # ((2w-1)^2, heads)
        bias = table[self.relative_position_index.view(-1)].view(N, N, self.heads)
        return 16 * torch.sigmoid(bias.permute(2, 0, 1))

    def position_bias(self) -> Tensor:
        """The position bias, cached in eval mode while no gradient must flow through it.

        The cache key holds the CPB parameters' storage and in-place version counters, so
        `load_state_dict`, an optimizer step or a device/dtype move invalidates it. The cached
        bias is computed outside autocast, in the parameters' dtype: filled under bf16 autocast
        (a bf16 worker's warm-up), it would otherwise be bf16 and break the next call that runs
        without autocast (a 16-bit image, always float32) in the bias-fused `baddbmm`.
        """
        params = list(self.cpb_mlp.parameters())
        if (
            self.training
            or torch.compiler.is_compiling()  # traced into the graph, see `shift_masks`
            or (torch.is_grad_enabled() and any(p.requires_grad for p in params))
        ):
            return self.compute_position_bias()
        key = tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in params)
        if self._bias_cache is None or self._bias_cache[0] != key:
            device_type = self.relative_coords_table.device.type
            with (
                torch.inference_mode(False),
                torch.no_grad(),
                torch.autocast(device_type, enabled=False),
            ):
                self._bias_cache = (key, self.compute_position_bias())
        return self._bias_cache[1]

    def forward(self, x: Tensor) -> Tensor:
        """Attend within (shifted) windows.

        Args:
            x: (B, H, W, C) normalised features, H and W multiples of the window.

        Returns:
            (B, H, W, C).
        """
        _, H, W, _ = x.shape
        window, shift = self.window, self.shift
        if shift:
            x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
        windows = window_partition(x, window)  # (B*nW, N, C)
        bias = self.position_bias()  # (heads, N, N)
        grid = (H // window, W // window)
        step = windows.shape[0] if x.is_cuda else max(1, CPU_CHUNK_TOKENS // window**2)
        attended = chunked(
            lambda first, stop: self._attend(windows[first:stop], first, grid, bias),
            windows.shape[0],
            step,
        )  # (B*nW, N, C)
        out = window_reverse(attended, window, H, W)
        if shift:
            out = torch.roll(out, shifts=(shift, shift), dims=(1, 2))
        return out

    def _attend(self, windows: Tensor, first: int, grid: tuple[int, int], bias: Tensor) -> Tensor:
        """Both branches on windows first.. of a (B, rows, cols) grid: (n, N, C) -> (n, N, C)."""
        n, N, C = windows.shape
        qkv = self.qkv(windows)  # (n, N, 3C)
        # per-window depthwise conv: zero padding at every window border, as released
        qkv = qkv.view(n, self.window, self.window, 3 * C).permute(0, 3, 1, 2)  # channels-last
        qkv = self.qkv_dwconv(qkv).permute(0, 2, 3, 1).reshape(n, N, 3 * C)
        half = C // 2  # channels: q, k, v of the spatial branch, then of the channel branch
        spatial = self._spatial(qkv[..., :C], qkv[..., C : 3 * half], bias, first, grid)
        channel = self._channel(qkv[..., 3 * half : 5 * half], qkv[..., 5 * half :])
        # project_out(cat[spatial, channel]) as two GEMMs into one output: no concatenation.
        # Out of place (`addmm`, not `addmm_`): autocast casts the operands of `addmm` alike,
        # while an in-place `addmm_` would meet a bf16 `out` with fp32 weights and fail.
        weight = self.project_out.weight  # (C, C)
        out = F.linear(spatial, weight[:, :half], self.project_out.bias)  # (n, N, C)
        out = torch.addmm(out.view(n * N, C), channel.reshape(n * N, half), weight[:, half:].t())
        return out.view(n, N, C)

    def _heads(self, x: Tensor) -> Tensor:
        """(B*nW, N, C/2) -> (B*nW, heads, N, d); channels split as (head, d)."""
        Bn, N, half = x.shape
        return x.view(Bn, N, self.heads, half // self.heads).transpose(1, 2)

    def _merge_heads(self, x: Tensor) -> Tensor:
        """(B*nW, heads, N, d) -> (B*nW, N, heads * d)."""
        Bn, heads, N, d = x.shape
        return x.transpose(1, 2).reshape(Bn, N, heads * d)

    def _spatial(
        self, qk: Tensor, v: Tensor, bias: Tensor, first: int, grid: tuple[int, int]
    ) -> Tensor:
        """Cosine attention over the pixels of each window.

        Args:
            qk: (n, N, C) = q and k, C/2 channels each.
            v: (n, N, C/2).
            bias: (heads, N, N) position bias.
            first: index of the first of these windows in the (B, rows, cols) grid.
            grid: (rows, cols).

        Returns:
            (n, N, C/2).
        """
        n, N, C = qk.shape
        heads = self.heads
        qk = qk.view(n, N, 2 * heads, C // (2 * heads))  # (n, N, [q heads, k heads], d)
        # unit rows, with the temperature folded into q's scale: one pass over q and k
        scale = torch.clamp(self.logit_scale, max=MAX_LOGIT_SCALE).exp().view(1, 1, heads, 1)
        factors = torch.cat([scale, torch.ones_like(scale)], dim=2) / _norm(qk, dim=-1)
        qk = qk * factors
        q = qk[:, :, :heads].transpose(1, 2)  # (n, heads, N, d)
        k = qk[:, :, heads:].transpose(1, 2)
        if heads == 1:  # the bias add fused into the batched GEMM
            logits = torch.baddbmm(bias, q.squeeze(1), k.squeeze(1).transpose(-2, -1))
            logits = logits.unsqueeze(1)  # (n, 1, N, N)
        else:
            logits = q @ k.transpose(-2, -1)  # (n, heads, N, N)
            logits += bias
        if self.shift:
            masks = shift_masks(self.window, self.shift, logits.device, logits.dtype)
            for windows, kind in masked_windows(first, n, *grid):
                logits[windows] += masks[kind]
        return self._merge_heads(attend_softmax_one(logits, self._heads(v)))

    def _channel(self, qk: Tensor, v: Tensor) -> Tensor:
        """Transposed (channel) attention inside each window: qk (n, N, C), v (n, N, C/2).

        Returns:
            (n, N, C/2).
        """
        n, _, C = qk.shape
        heads, d = self.heads, C // (2 * self.heads)
        # cosine similarity over tokens: scale the small (d, d) product, not q and k
        norms = _norm(qk, dim=1)  # (n, 1, C)
        q_norm = norms[..., : C // 2].reshape(n, heads, d, 1)
        k_norm = norms[..., C // 2 :].reshape(n, heads, 1, d)
        q, k = self._heads(qk[..., : C // 2]), self._heads(qk[..., C // 2 :])  # (n, h, N, d)
        logits = (q.transpose(-2, -1) @ k) / (q_norm * k_norm)  # (n, heads, d, d)
        out = attend_softmax_one(logits, self._heads(v).transpose(-2, -1))  # (n, heads, d, N)
        return self._merge_heads(out.transpose(-2, -1))


def _norm(x: Tensor, dim: int) -> Tensor:
    """L2 norm over `dim` (kept), floored as F.normalize floors it."""
    return torch.linalg.vector_norm(x, dim=dim, keepdim=True).clamp_min(NORM_EPS)


def chunked(compute: Callable[[int, int], Tensor], total: int, step: int) -> Tensor:
    """`compute(first, stop)` over [0, total) in steps of `step`, stacked along dim 0.

    Each chunk is copied into the result while it is still in the CPU's caches, where
    concatenating the chunks at the end re-read them all from memory (`torch.cat` showed as
    ~23 % of the `lite` network's CPU profile, ~7 % after; end to end 2-8 % faster on one
    thread). The result takes the first chunk's dtype (bf16 under autocast).
    """
    first_chunk = compute(0, min(step, total))
    if first_chunk.shape[0] == total:
        return first_chunk
    result = first_chunk.new_empty((total, *first_chunk.shape[1:]))
    result[: first_chunk.shape[0]] = first_chunk
    for first in range(step, total, step):
        stop = min(first + step, total)
        result[first:stop] = compute(first, stop)
    return result


class GatedFeedForward(nn.Module):
    """1x1 conv to two halves of width int(factor * C), their product, 1x1 conv back to C."""

    def __init__(self, dim: int, factor: float, bias: bool) -> None:
        super().__init__()
        hidden = int(dim * factor)
        self.project_in = nn.Linear(dim, 2 * hidden, bias=bias)
        self.project_out = nn.Linear(hidden, dim, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        """(..., C) -> (..., C); on the CPU in chunks of CPU_CHUNK_TOKENS tokens."""
        if x.is_cuda or x.shape[:-1].numel() <= CPU_CHUNK_TOKENS:
            return self._gated(x)
        tokens = x.reshape(-1, x.shape[-1])  # (T, C)
        gated = chunked(
            lambda first, stop: self._gated(tokens[first:stop]), tokens.shape[0], CPU_CHUNK_TOKENS
        )  # (T, C)
        return gated.view(x.shape)

    def _gated(self, x: Tensor) -> Tensor:
        gate, value = self.project_in(x).chunk(2, dim=-1)
        return self.project_out(gate * value)


def modulate(x: Tensor, film: FiLM | None) -> Tensor:
    """FiLM: x * (1 + gamma) + beta, or x unchanged when there is no conditioning."""
    if film is None:
        return x
    gamma, beta = film
    return torch.addcmul(x + beta, x, gamma)


class TransformerBlock(nn.Module):
    """Pre-norm block: x + attn(LN(x)), then x + ffn(LN(x)), optionally FiLM-modulated."""

    def __init__(
        self, dim: int, heads: int, window: int, shift: int, ffn_factor: float, bias: bool
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MixedAttention(dim, heads, window, shift, bias)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = GatedFeedForward(dim, ffn_factor, bias)

    def forward(self, x: Tensor, film: FiLM | None = None) -> Tensor:
        """(B, H, W, C) -> (B, H, W, C); `film` modulates both normalised inputs."""
        x = x + self.attn(modulate(self.norm1(x), film))
        return x + self.ffn(modulate(self.norm2(x), film))


def transformer_level(
    dim: int, depth: int, heads: int, window: int, ffn_factor: float, bias: bool
) -> nn.ModuleList:
    """`depth` blocks alternating shift 0 and window/2 (even index: unshifted)."""
    return nn.ModuleList(
        TransformerBlock(dim, heads, window, (window // 2) * (i % 2), ffn_factor, bias)
        for i in range(depth)
    )


def to_channels_first(tokens: Tensor) -> Tensor:
    """(B, H, W, C) -> (B, C, H, W) view, channels-last in memory (no copy)."""
    return tokens.permute(0, 3, 1, 2)


def to_tokens(image: Tensor) -> Tensor:
    """(B, C, H, W) -> contiguous (B, H, W, C); free when the input is channels-last."""
    return image.permute(0, 2, 3, 1).contiguous()


class Downsample(nn.Module):
    """Half resolution, double width: 3x3 conv C -> C/2 (no bias), then PixelUnshuffle(2)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(dim, dim // 2, kernel_size=3, padding=1, bias=False), nn.PixelUnshuffle(2)
        )

    def forward(self, x: Tensor) -> Tensor:
        """(B, H, W, C) -> (B, H/2, W/2, 2C)."""
        return to_tokens(self.body(to_channels_first(x)))


class Upsample(nn.Module):
    """Double resolution, half width: 3x3 conv C -> 2C (no bias), then PixelShuffle(2)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(dim, dim * 2, kernel_size=3, padding=1, bias=False), nn.PixelShuffle(2)
        )

    def forward(self, x: Tensor) -> Tensor:
        """(B, H, W, C) -> (B, 2H, 2W, C/2)."""
        return to_tokens(self.body(to_channels_first(x)))


class PatchEmbed(nn.Module):
    """Stem: PixelUnshuffle(2), then 3x3 conv 4*in -> C (no bias)."""

    def __init__(self, in_channels: int, dim: int) -> None:
        super().__init__()
        self.unshuffle = nn.PixelUnshuffle(2)
        self.proj = nn.Conv2d(4 * in_channels, dim, kernel_size=3, padding=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """(B, in, H, W) -> (B, H/2, W/2, C)."""
        x = self.unshuffle(x).contiguous(memory_format=torch.channels_last)
        return to_tokens(self.proj(x))
