"""The `swintormer` dispatcher: help lists every subcommand; each subcommand module is complete."""

from __future__ import annotations

import argparse
import importlib

import pytest

from swintormer.cli import SUBCOMMANDS, main


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for sub in SUBCOMMANDS:
        assert sub.name in out
        assert sub.help in out


def test_unknown_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["no-such-command"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("sub", SUBCOMMANDS, ids=lambda sub: sub.name)
def test_every_subcommand_builds_its_parser(sub: object) -> None:
    module = importlib.import_module(sub.module)  # type: ignore[attr-defined]
    parser = argparse.ArgumentParser(prog=f"swintormer {sub.name}")  # type: ignore[attr-defined]
    module.add_arguments(parser)
    assert callable(module.run)
    assert parser.format_help()
