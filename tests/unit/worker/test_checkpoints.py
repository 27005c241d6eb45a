"""Which checkpoint a worker loads, and the message when there is none."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.config import Settings
from worker import checkpoints
from worker.checkpoints import CheckpointMissingError, resolve_checkpoint


def test_missing_checkpoint_message_says_how_to_provide_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(checkpoints, "default_checkpoint", lambda: None)
    with pytest.raises(CheckpointMissingError, match="SWINTORMER_CHECKPOINT="):
        resolve_checkpoint(Settings())
    with pytest.raises(CheckpointMissingError, match="does not exist"):
        resolve_checkpoint(Settings(checkpoint=tmp_path / "missing.safetensors"))
    shipped = tmp_path / "default.safetensors"
    shipped.write_bytes(b"x")
    monkeypatch.setattr(checkpoints, "default_checkpoint", lambda: shipped)
    assert resolve_checkpoint(Settings()) == shipped
