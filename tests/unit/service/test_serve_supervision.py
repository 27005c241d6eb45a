"""`swintormer serve`'s supervision: restart with doubling back-off, crash loops reported,
configuration errors not retried, ports of its own when the configured ones are taken."""

from __future__ import annotations

import logging
import socket
import subprocess
import time
from typing import Any

import pytest

from service import serve_cli
from service.config import Settings
from service.redis_server import free_port


class FakeProcess:
    """A worker process that has exited with `status` (None: still running)."""

    def __init__(self, status: int | None) -> None:
        self.status = status
        self.pid = 4242
        self.signals: list[int] = []

    def poll(self) -> int | None:
        return self.status

    def send_signal(self, signum: int) -> None:
        self.signals.append(signum)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(time, "monotonic", fake)
    return fake


def slot_with(
    monkeypatch: pytest.MonkeyPatch, statuses: list[int | None], **settings: Any
) -> tuple[serve_cli.WorkerSlot, list[list[str]]]:
    started: list[list[str]] = []
    queue = list(statuses)

    def popen(command: list[str], **_: object) -> FakeProcess:
        started.append(command)
        return FakeProcess(queue.pop(0) if queue else None)

    monkeypatch.setattr(subprocess, "Popen", popen)
    fields: dict[str, Any] = {"redis_url": "redis://x", "worker_metrics_port": 0, **settings}
    return serve_cli.WorkerSlot(Settings(**fields), "redis://x", 0), started


def test_a_dying_worker_is_restarted_with_doubling_back_off_and_a_crash_loop_is_reported(
    monkeypatch: pytest.MonkeyPatch, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    slot, started = slot_with(monkeypatch, [-9] * 7, worker_restart_max_s=8)
    delays = []
    with caplog.at_level(logging.ERROR, logger="swintormer.serve"):
        for _ in range(6):
            clock.now += 1  # each start dies within a second
            assert slot.check() is None
            assert slot.restart_at is not None
            delays.append(slot.restart_at - clock.now)
            clock.now = slot.restart_at
            assert slot.check() is None  # restarted now
    assert delays == [1, 2, 4, 8, 8, 8]  # doubling, capped at worker_restart_max_s
    assert len(started) == 7
    assert len({command[-1] for command in started}) == 7  # a new RQ name per start
    assert "crash loop" in caplog.text
    assert "exited with status -9" in caplog.text


def test_a_worker_that_ran_a_while_restarts_after_one_second(
    monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    slot, _ = slot_with(monkeypatch, [-9, -9])
    clock.now += 1
    slot.check()
    clock.now = slot.restart_at or 0
    slot.check()
    clock.now += 3600  # the restarted one ran for an hour before dying
    slot.check()
    assert slot.restart_at == clock.now + 1


def test_a_configuration_error_is_not_retried(
    monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    slot, started = slot_with(monkeypatch, [serve_cli.CONFIG_ERROR_STATUS])
    assert slot.check() == serve_cli.CONFIG_ERROR_STATUS
    assert len(started) == 1


def test_worker_metrics_default_to_loopback_and_move_off_a_taken_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().worker_metrics_host == "127.0.0.1"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = Settings(redis_url="redis://x", worker_metrics_port=port)
        chosen = serve_cli.metrics_port(settings, 0)
        assert chosen not in (0, port)
    env = serve_cli.worker_environment(settings, "redis://x", chosen)
    assert env["SWINTORMER_WORKER_METRICS_HOST"] == "127.0.0.1"
    assert env["SWINTORMER_WORKER_METRICS_PORT"] == str(chosen)
    free = free_port()
    assert serve_cli.metrics_port(Settings(worker_metrics_port=free), 0) == free


def test_each_worker_gets_its_number_so_they_spread_over_the_gpus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    environments: list[dict[str, str]] = []

    def popen(command: list[str], env: dict[str, str], **_: object) -> FakeProcess:
        environments.append(env)
        return FakeProcess(None)

    monkeypatch.setattr(subprocess, "Popen", popen)
    settings = Settings(redis_url="redis://x", worker_metrics_port=0)
    serve_cli.WorkerGroup(settings, "redis://x", 3)
    assert [env["SWINTORMER_WORKER_INDEX"] for env in environments] == ["0", "1", "2"]
