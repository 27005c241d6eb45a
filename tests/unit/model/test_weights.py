"""The shipped-weights lookup."""

from __future__ import annotations

from pathlib import Path

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
