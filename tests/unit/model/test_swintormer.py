"""The network: faithfulness to the released code, any input size, gradients, FiLM hook."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model import layers
from model.checkpoint import network_from_state_dict
from model.config import SwintormerConfig, preset
from model.layers import MixedAttention, shift_masks
from model.released import map_released_state_dict
from model.swintormer import ENCODER_PREFIXES, Swintormer, pad_to_multiple
from tests.reference import GOLDEN_CONFIG, golden_description, released_shapes, released_state

RELEASED_PARAMETERS = 25_177_224
RELEASED_KEYS = 479


def test_golden_output_of_the_released_tiny_network(golden: dict[str, np.ndarray]) -> None:
    network = network_from_state_dict(
        map_released_state_dict(released_state(golden)), GOLDEN_CONFIG
    )
    blurry = torch.from_numpy(golden["input"])
    with torch.no_grad():
        restored = network(blurry)
    error = (restored - torch.from_numpy(golden["output"])).abs().max().item()
    assert error <= 1e-5


def test_golden_config_is_the_released_constructor() -> None:
    kwargs = golden_description()["released_constructor_kwargs"]
    renamed = {"inp_channels": "in_channels", "ffn_expansion_factor": "ffn_factor"}
    released = {renamed.get(key, key): value for key, value in kwargs.items()}
    ours = GOLDEN_CONFIG.to_dict()
    assert released == {key: ours[key] for key in released}


def test_golden_output_with_gradients_on_and_in_train_mode(golden: dict[str, np.ndarray]) -> None:
    # the uncached, autograd-recording path computes the same numbers
    network = network_from_state_dict(
        map_released_state_dict(released_state(golden)), GOLDEN_CONFIG
    )
    restored = network.train()(torch.from_numpy(golden["input"]))
    assert (restored - torch.from_numpy(golden["output"])).abs().max().item() <= 1e-5


@pytest.fixture(scope="module")
def paper_on_meta() -> Swintormer:
    """The `paper` network without memory or init cost."""
    with torch.device("meta"):
        return Swintormer(preset("paper"))


def test_paper_preset_has_the_released_parameter_count(paper_on_meta: Swintormer) -> None:
    assert sum(p.numel() for p in paper_on_meta.parameters()) == RELEASED_PARAMETERS


def test_every_released_key_maps_to_a_parameter_of_the_same_size(
    paper_on_meta: Swintormer,
) -> None:
    released = released_shapes()
    shapes = released["state_dict_shapes"]
    assert len(shapes) == RELEASED_KEYS
    assert released["num_parameters"] == RELEASED_PARAMETERS
    state = {name: torch.empty(shape, device="meta") for name, shape in shapes.items()}
    mapped = map_released_state_dict(state)
    ours = paper_on_meta.state_dict()
    assert len(mapped) == RELEASED_KEYS
    assert set(mapped) == set(ours)
    assert {k: v.shape for k, v in mapped.items()} == {k: v.shape for k, v in ours.items()}


@pytest.mark.parametrize(("height", "width"), [(37, 53), (64, 64), (1, 1), (3, 7)])
def test_any_size_including_smaller_than_one_window(
    tiny_config: SwintormerConfig, height: int, width: int
) -> None:
    network = Swintormer(tiny_config).eval()
    blurry = torch.rand(2, 3, height, width)
    with torch.no_grad():
        restored = network(blurry)
    assert restored.shape == (2, 3, height, width)
    assert torch.isfinite(restored).all()
    # batch items do not interact
    with torch.no_grad():
        single = network(blurry[1:])
    torch.testing.assert_close(single, restored[1:], atol=1e-5, rtol=0)


def test_reflect_padding_reaches_the_multiple_for_tiny_inputs() -> None:
    image = torch.arange(6.0).view(1, 1, 2, 3)
    padded = pad_to_multiple(image, 16)
    assert padded.shape == (1, 1, 16, 16)
    assert torch.equal(padded[..., :2, :3], image)
    # the first reflection mirrors around the last row/column
    assert torch.equal(padded[0, 0, 0, 3], image[0, 0, 0, 1])
    assert torch.equal(pad_to_multiple(torch.ones(1, 1, 1, 1), 8), torch.ones(1, 1, 8, 8))


def test_wrong_channel_count_is_a_clear_error(tiny_config: SwintormerConfig) -> None:
    with pytest.raises(ValueError, match=r"expected \(B, 3, H, W\)"):
        Swintormer(tiny_config)(torch.rand(1, 6, 64, 64))


def test_gradients_reach_every_parameter(tiny_config: SwintormerConfig) -> None:
    network = Swintormer(tiny_config).train()
    network(torch.rand(1, 3, 64, 64)).square().mean().backward()
    for name, param in network.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def test_shift_masks_equal_the_full_swin_mask() -> None:
    window, shift, rows, cols = 4, 2, 3, 2
    # the standard construction: label the 3x3 regions of the shifted image, compare labels
    labels = torch.zeros(rows * window, cols * window)
    count = 0
    for hs in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
        for ws in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
            labels[hs, ws] = count
            count += 1
    windows = labels.view(rows, window, cols, window).permute(0, 2, 1, 3).reshape(rows, cols, -1)
    full = (windows[..., None, :] != windows[..., :, None]).float() * -100.0  # (rows, cols, N, N)
    last_row, last_col, corner = shift_masks(window, shift, torch.device("cpu"), torch.float32)
    expected = torch.zeros_like(full)
    expected[-1, :-1] = last_row
    expected[:-1, -1] = last_col
    expected[-1, -1] = corner
    assert torch.equal(full, expected)


def test_cached_position_bias_follows_the_weights() -> None:
    attention = MixedAttention(dim=8, heads=2, window=4, shift=2, bias=False).eval()
    tokens = torch.rand(1, 8, 8, 8)
    with torch.no_grad():
        attention(tokens)
        cached = attention.position_bias()
        assert cached is attention.position_bias()  # reused, not rebuilt
        other = MixedAttention(dim=8, heads=2, window=4, shift=2, bias=False)
        attention.load_state_dict(other.state_dict())
        torch.testing.assert_close(attention(tokens), other.eval()(tokens))
        torch.testing.assert_close(attention.position_bias(), other.compute_position_bias())


@pytest.mark.parametrize("heads", [1, 2])
def test_a_position_bias_cached_under_autocast_serves_float32_calls(heads: int) -> None:
    attention = MixedAttention(dim=8, heads=heads, window=4, shift=2, bias=False).eval()
    tokens = torch.rand(1, 8, 8, 8)
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            attention(tokens)  # a bf16 worker's warm-up fills the cache
        assert attention.position_bias().dtype == torch.float32
        torch.testing.assert_close(attention.position_bias(), attention.compute_position_bias())
        assert attention(tokens).dtype == torch.float32  # a 16-bit image's float32 job


def test_film_hook_starts_as_identity_and_then_conditions(tiny_config: SwintormerConfig) -> None:
    plain = Swintormer(tiny_config).eval()
    config = SwintormerConfig(**{**tiny_config.to_dict(), "cond_channels": 4})
    conditioned = Swintormer(config).eval()
    conditioned.load_state_dict(plain.state_dict(), strict=False)
    blurry = torch.rand(1, 3, 50, 70)
    grid = conditioned.latent_grid(50, 70)
    assert grid == (4, 8)  # padded to 64 x 128 (tiny's multiple is 64), / 16
    blurry = blurry[..., :30, :30]  # a smaller image for the numerics: padded to 64 x 64
    grid = conditioned.latent_grid(30, 30)
    z = torch.randn(1, 4, *grid)
    with torch.no_grad():
        torch.testing.assert_close(conditioned(blurry, z), plain(blurry), atol=1e-6, rtol=0)
        torch.testing.assert_close(conditioned(blurry), plain(blurry), atol=0, rtol=0)
        for name, param in conditioned.named_parameters():
            if name.startswith("film."):
                param.normal_(std=1.0)
        assert (conditioned(blurry, z) - plain(blurry)).abs().max() > 1e-4
    with pytest.raises(ValueError, match=r"expected cond of shape \(1, 4, 4, 4\)"):
        conditioned(blurry, torch.randn(1, 4, 3, 3))
    with pytest.raises(ValueError, match="no conditioning hook"):
        plain(blurry, z)


def test_encoder_prefixes_split_the_parameters(tiny_config: SwintormerConfig) -> None:
    config = SwintormerConfig(**{**tiny_config.to_dict(), "cond_channels": 4})
    names = [name for name, _ in Swintormer(config).named_parameters()]
    encoder = [name for name in names if name.startswith(ENCODER_PREFIXES)]
    assert any(name.startswith("latent.") for name in encoder)
    assert not any(name.startswith(("film", "decoder", "refinement")) for name in encoder)


@pytest.mark.parametrize("heads", [1, 2])
def test_chunked_attention_equals_one_pass(heads: int, monkeypatch: pytest.MonkeyPatch) -> None:
    attention = MixedAttention(dim=8, heads=heads, window=4, shift=2, bias=False).eval()
    tokens = torch.randn(3, 12, 20, 8)  # 3 images of 3 x 5 windows
    with torch.no_grad():
        monkeypatch.setattr(layers, "CPU_CHUNK_TOKENS", 10**9)
        whole = attention(tokens)
        for chunk_tokens in (16, 48, 112):  # 1, 3 and 7 windows: chunks cut rows and images
            monkeypatch.setattr(layers, "CPU_CHUNK_TOKENS", chunk_tokens)
            # the same sums, but the matmul kernels may block a different batch differently
            torch.testing.assert_close(attention(tokens), whole, atol=1e-6, rtol=0)


def test_chunked_feed_forward_equals_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    ffn = layers.GatedFeedForward(8, 2.66, bias=True)
    tokens = torch.randn(2, 9, 7, 8, requires_grad=True)
    whole = ffn(tokens)
    (whole_grad,) = torch.autograd.grad(whole.square().sum(), tokens)
    monkeypatch.setattr(layers, "CPU_CHUNK_TOKENS", 10)
    chunked = ffn(tokens)
    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=0)
    # training on the CPU runs the chunks too: gradients pass the per-chunk copies
    (chunked_grad,) = torch.autograd.grad(chunked.square().sum(), tokens)
    torch.testing.assert_close(chunked_grad, whole_grad, atol=1e-5, rtol=0)


def test_chunked_stacks_in_order_in_the_first_chunk_s_dtype() -> None:
    rows = torch.arange(10.0).view(10, 1).to(torch.bfloat16)
    stacked = layers.chunked(lambda first, stop: rows[first:stop] * 2, 10, 3)
    assert stacked.dtype == torch.bfloat16
    torch.testing.assert_close(stacked, rows * 2)
    assert layers.chunked(lambda first, stop: rows[first:stop], 10, 16).shape == (10, 1)


def test_masked_windows_of_a_chunk() -> None:
    # 2 x 3 grid, one image: windows 3, 4 form the last row, 2 the last column, 5 the corner
    assert layers.masked_windows(0, 6, 2, 3) == [
        (slice(3, 5, 1), 0),
        (slice(2, 3, 3), 1),
        (slice(5, 6, 1), 2),
    ]
    # windows 4..8 of a batch: 4 (last row), 5 (corner), then image 2's window 2 at index 4
    assert layers.masked_windows(4, 5, 2, 3) == [
        (slice(0, 1, 1), 0),
        (slice(1, 2, 1), 2),
        (slice(4, 5, 3), 1),
    ]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_the_network_runs_under_cpu_autocast(dtype: torch.dtype) -> None:
    """The same autocast casting rules as CUDA's: every GEMM's operands are cast alike."""
    torch.manual_seed(0)
    network = Swintormer(preset("tiny")).eval()
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = network(image)
        with torch.autocast("cpu", dtype=dtype):
            out = network(image)
    assert out.shape == expected.shape
    assert torch.isfinite(out).all()
    assert float((out.float() - expected).abs().mean()) < 0.02
