"""Atomic writes: the file appears whole on success; a failed write leaves the old file alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from model.atomic_files import atomic_path


def test_the_file_appears_under_its_name_and_no_partial_is_left(tmp_path: Path) -> None:
    target = tmp_path / "best.safetensors"
    with atomic_path(target) as partial:
        assert partial.name == "best.partial.safetensors"
        partial.write_bytes(b"new")
        assert not target.exists()
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["best.safetensors"]


def test_a_failed_write_keeps_the_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "resume.pt"
    target.write_bytes(b"old")

    def interrupted_write() -> None:
        with atomic_path(target) as partial:
            partial.write_bytes(b"torn")
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        interrupted_write()
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["resume.pt"]
