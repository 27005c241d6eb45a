"""The shipped-weights lookup."""

from __future__ import annotations

from pathlib import Path

from model.checkpoint import read_checkpoint
from model.config import model_preset
from model.weights import DEFAULT_CHECKPOINT_NAME, WEIGHTS_DIR, default_checkpoint


def test_default_checkpoint_is_none_without_a_file(tmp_path: Path) -> None:
    assert default_checkpoint(tmp_path) is None
    (tmp_path / DEFAULT_CHECKPOINT_NAME).mkdir()  # a directory of that name is not a checkpoint
    assert default_checkpoint(tmp_path) is None


def test_default_checkpoint_finds_the_file(tmp_path: Path) -> None:
    path = tmp_path / DEFAULT_CHECKPOINT_NAME
    path.write_bytes(b"x")
    assert default_checkpoint(tmp_path) == path


def test_weights_dir_is_the_repository_weights_folder() -> None:
    assert Path(__file__).resolve().parents[3] / "weights" == WEIGHTS_DIR


def test_the_shipped_checkpoints_are_the_presets_their_comments_name() -> None:
    """`model_preset` names what the repository ships: a preset that drifted from its file
    would build, train or profile another model than the one served."""
    default = default_checkpoint()
    assert default is not None
    assert read_checkpoint(default).config == model_preset("lite-defocus")
    lite_defocus = read_checkpoint(WEIGHTS_DIR / "lite_defocus.safetensors").config
    assert lite_defocus == model_preset("lite-defocus")
    lite_prior = read_checkpoint(WEIGHTS_DIR / "lite_prior.safetensors").config
    assert lite_prior == model_preset("lite-prior")
