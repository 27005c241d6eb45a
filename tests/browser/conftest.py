"""The service the browser tests drive, on loopback: `swintormer serve` with a tiny model that
estimates the blur (`tiny-defocus`), plus two gateways on the same Redis, one that needs an API
key and one whose queue no worker serves (jobs stay queued there, to be seen waiting and canceled).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from selenium import webdriver

from service.redis_server import EmbeddedRedis, free_port
from tests.browser.chromium import (
    API_KEY,
    SCREENSHOT_DIR,
    Screenshot,
    Served,
    browser_binaries,
    start_chrome,
    start_service,
)
from tests.defocus_restorer import save_tiny_defocus_restorer
from tests.integration.processes import SERVICE_ENV

# a database of its own on the session's server: other tests flush database 0
REDIS_DB = 3
IDLE_QUEUE_DEPTH = 1


@pytest.fixture(scope="session")
def service_env(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """Environment of every process of the service under test."""
    browser_binaries()  # skip (or fail under CI) before starting anything
    checkpoint = tmp_path_factory.mktemp("weights") / "tiny-defocus.safetensors"
    save_tiny_defocus_restorer(checkpoint)
    url = redis_server.url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()
    env = {name: value for name, value in os.environ.items() if not name.startswith("SWINTORMER_")}
    env.update(SERVICE_ENV)
    env |= {"SWINTORMER_REDIS_URL": url, "SWINTORMER_CHECKPOINT": str(checkpoint)}
    return env


@pytest.fixture(scope="session")
def service(service_env: dict[str, str]) -> Iterator[Served]:
    """`swintormer serve`: one worker with the tiny-defocus model, and the gateway."""
    served = start_service("serve", service_env, free_port(), "/readyz")
    yield served
    served.stop()


@pytest.fixture(scope="session")
def keyed_gateway(service_env: dict[str, str], service: Served) -> Iterator[Served]:
    """A gateway that needs `API_KEY`; the service's worker runs its jobs."""
    env = {**service_env, "SWINTORMER_API_KEYS": f'["{API_KEY}"]'}
    served = start_service("gateway", env, free_port(), "/healthz")
    yield served
    served.stop()


@pytest.fixture(scope="session")
def idle_gateway(service_env: dict[str, str]) -> Iterator[Served]:
    """A gateway whose queue no worker listens on: its jobs wait until canceled.

    Its queue holds `IDLE_QUEUE_DEPTH` jobs, so the next upload is refused with 429.
    """
    env = {
        **service_env,
        "SWINTORMER_QUEUE_NAME": "browser-test-idle",
        "SWINTORMER_MAX_QUEUE_DEPTH": str(IDLE_QUEUE_DEPTH),
    }
    served = start_service("gateway", env, free_port(), "/healthz")
    yield served
    served.stop()


@pytest.fixture(scope="session")
def download_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="session")
def browser(download_dir: Path, service_env: dict[str, str]) -> Iterator[webdriver.Chrome]:
    chrome = start_chrome(download_dir)
    yield chrome
    chrome.quit()


_saved: list[Path] = []


@pytest.fixture
def screenshot(browser: webdriver.Chrome) -> Screenshot:
    """`screenshot(name)` saves the page as SCREENSHOT_DIR/name.png."""

    def save(name: str) -> Path:
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOT_DIR / f"{name}.png"
        browser.save_screenshot(str(path))
        _saved.append(path)
        return path

    return save


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _saved:
        terminalreporter.write_line(
            f"browser screenshots ({len(_saved)}): {SCREENSHOT_DIR}", bold=True
        )
