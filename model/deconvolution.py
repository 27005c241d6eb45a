"""A bank of differentiable Wiener deconvolutions: one per (disk radius, regularisation) pair.

Defocus blur has a known form, a disk whose radius grows with the distance from the focal plane,
and for a given disk an analytic inverse (DWDN, Dong et al., NeurIPS 2020, deconvolves with
`G = conj(H) / (|H|^2 + NSR)` before a network refines). The bank applies that inverse at a
fixed set of radii, from in focus (r = 0) to beyond the training range, and at a few
regularisation strengths; `model.defocus` blends the candidates per pixel with weights a small
network predicts, so what is learned is the selection and the clean-up, not the inverse itself.

Each candidate is a Wiener-Hunt deconvolution regularised by a Laplacian,

    X = conj(H) Y / (|H|^2 + lambda |L|^2),

the formulation of the classical baseline (`model.evaluation.baselines.wiener`): high
frequencies, where natural images have little power and noise dominates, are damped most.

Borders: an FFT treats the image as periodic, so the input is mirror-padded by `margin_px` on
every side (at least twice the largest radius), the padding is blended into its own blur by
each candidate's disk (an edge taper per radius, MATLAB's `edgetaper`) so the periodic seam
does not ring, and the result is cropped back. The bank always runs in float32, also under
autocast: bf16 and fp16 have too few mantissa bits for a division by |H|^2 near the disk's
spectral zeros.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from model.psf import disk_psf, fast_fft_length

# The discrete Laplacian, the regulariser of every candidate (and of the Wiener baseline).
LAPLACIAN_TAPS = ((0.0, -1.0, 0.0), (-1.0, 4.0, -1.0), (0.0, -1.0, 0.0))


def _symmetric_index(size: int, before: int, after: int, device: torch.device) -> Tensor:
    """Source index of each padded position along one axis, mirrored about the border."""
    index = torch.arange(-before, size + after, device=device) % (2 * size)
    return torch.where(index < size, index, 2 * size - 1 - index)


def symmetric_pad(image: Tensor, top: int, bottom: int, left: int, right: int) -> Tensor:
    """Mirror-pad (B, C, H, W) by the given widths, border pixels repeated (numpy's "symmetric").

    Works for any width, also wider than the image. The symmetric extension is the one the
    training and evaluation blur is made with (`model.data.degrade.convolve`), so a candidate at
    the right radius is consistent with the image up to its border.
    """
    H, W = image.shape[-2:]
    rows = _symmetric_index(H, top, bottom, image.device)
    cols = _symmetric_index(W, left, right, image.device)
    return image.index_select(-2, rows).index_select(-1, cols)


def disk_stack(radii_px: Sequence[float]) -> Tensor:
    """The disks of `radii_px` (`model.psf.disk_psf`), centred in one (R, k, k) float32 stack."""
    psfs = [disk_psf(r) for r in radii_px]
    size = max(p.shape[0] for p in psfs)
    kernels = torch.zeros(len(psfs), size, size)
    for i, psf in enumerate(psfs):
        offset = (size - psf.shape[0]) // 2
        kernels[i, offset : offset + psf.shape[0], offset : offset + psf.shape[1]] = (
            torch.from_numpy(psf)
        )
    return kernels


def centred_spectrum(kernel: Tensor, shape: tuple[int, int]) -> Tensor:
    """rfft2 of odd (..., k, k) kernels centred on the origin of a `shape` grid."""
    k = kernel.shape[-1]
    grid = kernel.new_zeros((*kernel.shape[:-2], *shape))
    grid[..., :k, :k] = kernel
    grid = torch.roll(grid, shifts=(-(k // 2), -(k // 2)), dims=(-2, -1))
    return torch.fft.rfft2(grid)


def _taper_ramp(length: int, margin: int, inner: int, device: torch.device) -> Tensor:
    """1 over the image, ramping to 0 across each padding band: (length,) float32."""
    ramp = torch.ones(length, device=device)
    ramp[:margin] = torch.linspace(0.0, 1.0, margin + 1, device=device)[:-1]
    tail = length - margin - inner
    ramp[margin + inner :] = torch.linspace(1.0, 0.0, tail + 1, device=device)[1:]
    return ramp


class WienerBank(nn.Module):
    """Wiener deconvolutions of an image at every (radius, regularisation) of the bank.

    Args:
        radii_px: disk radii in pixels, ascending; 0 is "in focus" (the candidate is the input
            itself, denoised only by the regulariser).
        balances: regularisation weights lambda (> 0), ascending; larger = smoother.
        margin_px: reflect padding on each side; at least twice the largest radius.
    """

    kernels: Tensor  # (R, k, k) the bank's disks, centred
    laplacian: Tensor  # (3, 3) the regulariser
    balance: Tensor  # (1, N, 1, 1) the regularisation weights

    def __init__(self, radii_px: Sequence[float], balances: Sequence[float], margin_px: int):
        super().__init__()
        if not radii_px or not balances:
            raise ValueError("the bank needs at least one radius and one balance")
        if margin_px < 2 * max(radii_px):
            raise ValueError(f"margin_px {margin_px} is below twice the largest radius")
        self.radii_px = tuple(float(r) for r in radii_px)
        self.balances = tuple(float(b) for b in balances)
        self.margin_px = margin_px
        # derived tables: rebuilt from the config, never stored in checkpoints
        self.register_buffer("kernels", disk_stack(self.radii_px), persistent=False)  # (R, k, k)
        self.register_buffer("laplacian", torch.tensor(LAPLACIAN_TAPS), persistent=False)  # (3, 3)
        self.register_buffer(
            "balance", torch.tensor(self.balances).view(1, -1, 1, 1), persistent=False
        )  # (1, N, 1, 1)
        self._filters: dict[tuple[int, int, str], tuple[Tensor, Tensor]] = {}

    @property
    def num_candidates(self) -> int:
        """R * N: radii times balances."""
        return len(self.radii_px) * len(self.balances)

    def _transfer(self, shape: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """(OTFs (R, H', W'//2+1), inverse filters (R, N, H', W'//2+1)) for a padded shape.

        Cached per shape and device: tiles share one shape, so this runs once per tile size.
        """
        key = (*shape, str(self.kernels.device))
        cached = self._filters.get(key)
        if cached is None:
            otf = centred_spectrum(self.kernels.float(), shape)  # (R, H', W'')
            reg = centred_spectrum(self.laplacian.float(), shape).abs() ** 2  # (H', W'')
            power = (otf.abs() ** 2)[:, None]  # (R, 1, H', W'')
            inverse = otf.conj()[:, None] / (power + self.balance.float() * reg)  # (R, N, ...)
            cached = (otf, inverse)
            if len(self._filters) > 8:
                self._filters.clear()
            self._filters[key] = cached
        return cached

    def forward(self, blurry: Tensor) -> Tensor:
        """Deconvolve `blurry` with every candidate.

        Args:
            blurry: (B, C, H, W) in [0, 1].

        Returns:
            (B, R, N, C, H, W) float32 candidates, not clamped.
        """
        with torch.autocast(blurry.device.type, enabled=False):
            B, C, H, W = blurry.shape
            R, N = len(self.radii_px), len(self.balances)
            keep = torch.ones(B, R, N, dtype=torch.bool)
            out = blurry.new_empty((B, R, N, C, H, W), dtype=torch.float32)
            for radius, balance, _, candidates in self._candidates(blurry.float(), keep):
                out[:, radius, balance] = candidates
            return out

    def blend(self, blurry: Tensor, weights: Tensor, keep: Tensor) -> Tensor:
        """The per-pixel blend of the kept candidates, without holding all of them at once.

        Args:
            blurry: (B, C, H, W) in [0, 1].
            weights: (B, R, N, H, W) each candidate's weight per pixel.
            keep: (B, R, N) bool, which candidates each image needs; the others are neither
                computed nor blended (their weights should be 0 or negligible there).

        Returns:
            (B, C, H, W) float32: the sum over kept (r, n) of weights x candidates.
        """
        with torch.autocast(blurry.device.type, enabled=False):
            blend = torch.zeros_like(blurry, dtype=torch.float32)
            for radius, balance, images, candidates in self._candidates(blurry.float(), keep):
                weight = weights[images, radius, balance][:, None].float()  # (b, 1, H, W)
                blend = blend.index_add(0, images, weight * candidates)
            return blend

    def _candidates(
        self, blurry: Tensor, keep: Tensor
    ) -> Iterator[tuple[int, int, Tensor, Tensor]]:
        """The kept candidates, one (radius, balance) at a time, for the images that keep it.

        Yields (radius index, balance index, image indices (b,), candidates (b, C, H, W)).
        Each image's candidates are computed from its own planes alone, so they do not
        depend on which other images share the batch.
        """
        B, _, H, W = blurry.shape
        m = self.margin_px
        shape = (fast_fft_length(H + 2 * m), fast_fft_length(W + 2 * m))
        padded = symmetric_pad(blurry, m, shape[0] - H - m, m, shape[1] - W - m)  # (B, C, H', W')
        otf, inverse = self._transfer(shape)
        weight = torch.outer(
            _taper_ramp(shape[0], m, H, blurry.device), _taper_ramp(shape[1], m, W, blurry.device)
        )  # (H', W')
        spectrum = torch.fft.rfft2(padded)  # (B, C, H', W'')
        keep = keep.to(blurry.device)
        everyone = torch.arange(B, device=blurry.device)
        # One (radius, balance) at a time: its spectra (b, C, H', W'') stay small enough for the
        # CPU's caches, where all radii at once (about 240 MB for 4 tiles of 256 px) ran 2.4x
        # slower; and the inverse transform drops the padding rows between its two passes.
        for radius in range(otf.shape[0]):
            wanted = keep[:, radius].any(dim=1)  # (B,)
            if not bool(wanted.any()):
                continue
            images = everyone if bool(wanted.all()) else everyone[wanted]
            own = padded if len(images) == B else padded[images]
            if self.radii_px[radius] == 0.0:
                # the r = 0 disk is the identity: its edge taper would change nothing
                tapered = own
            else:
                # edge taper: each candidate inverts an image whose periodic seam is blurred by
                # its own disk, so the seam does not ring across the tile
                own_spectrum = spectrum if len(images) == B else spectrum[images]
                smooth = torch.fft.irfft2(own_spectrum * otf[radius], s=shape)  # (b, C, H', W')
                tapered = torch.lerp(smooth, own, weight)
            tapered_spectrum = torch.fft.rfft2(tapered)  # (b, C, H', W'')
            for balance in range(inverse.shape[1]):
                chosen = keep[images, radius, balance]  # (b,)
                if not bool(chosen.any()):
                    continue
                part = tapered_spectrum if bool(chosen.all()) else tapered_spectrum[chosen]
                spectra = part * inverse[radius, balance]  # (b', C, H', W'')
                rows = torch.fft.ifft(spectra, dim=-2)[..., m : m + H, :]  # (b', C, H, W'')
                candidates = torch.fft.irfft(rows, n=shape[1], dim=-1)[..., m : m + W]
                yield radius, balance, images[chosen], candidates
