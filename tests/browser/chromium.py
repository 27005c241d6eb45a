"""Debian's Chromium and its chromedriver for the web page's tests, and the service they drive.

`make tools` (run by `make test`) installs the `chromium` and `chromium-driver` packages when
missing. Without them a browser test fails under CI=true (CI must run every check) and is
skipped elsewhere, with the reason. Everything the tests start is stopped by its pid.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

ROOT = Path(__file__).resolve().parents[2]
# Screenshots of the page's main states; README.md shows one of them (docs/images/).
SCREENSHOT_DIR = Path(os.environ.get("SWINTORMER_SCREENSHOT_DIR", ROOT / "build" / "screenshots"))

# the key of the gateway that needs one (conftest's keyed_gateway)
API_KEY = "browser-test-key"

# screenshot(name) saves the page as SCREENSHOT_DIR/name.png and returns the path
Screenshot = Callable[[str], Path]


def _find(*names: str) -> str | None:
    return next((found for name in names if (found := shutil.which(name))), None)


def browser_binaries() -> tuple[str, str]:
    """(chromium, chromedriver); fails the test under CI=true when missing, skips it elsewhere."""
    chromium = _find("chromium", "chromium-browser")
    driver = _find("chromedriver")
    if chromium is not None and driver is not None:
        return chromium, driver
    missing = " and ".join(
        name for name, path in (("chromium", chromium), ("chromedriver", driver)) if path is None
    )
    reason = f"{missing} not installed; `make tools` installs Debian's chromium and chromium-driver"
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def start_chrome(download_dir: Path, width: int = 1280, height: int = 1000) -> webdriver.Chrome:
    """Headless Chromium, downloads into `download_dir`, the console log kept for the tests."""
    chromium, driver = browser_binaries()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",  # the tests run as root in a container
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-sync",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(download_dir), "download.prompt_for_download": False},
    )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    browser.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)}
    )
    return browser


@dataclass
class Served:
    """A process of the service on loopback and its base URL."""

    process: subprocess.Popen[str]
    url: str

    def stop(self) -> str:
        """Stop it (SIGTERM, then SIGKILL) and return what it printed."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGKILL)
                self.process.wait(timeout=10)
        output = self.process.stdout.read() if self.process.stdout else ""
        if self.process.stdout:
            self.process.stdout.close()
        return output


def start_service(command: str, env: dict[str, str], port: int, ready_path: str) -> Served:
    """Start `swintormer COMMAND` (serve or gateway); wait until `ready_path` answers 200."""
    process = subprocess.Popen(
        [sys.executable, "-m", "swintormer", command],
        cwd=ROOT,
        env={**env, "SWINTORMER_PORT": str(port)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    served = Served(process, f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"swintormer {command} exited:\n{served.stop()}")
        try:
            if httpx.get(served.url + ready_path, timeout=2).status_code == 200:
                return served
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    output = served.stop()
    pytest.fail(f"swintormer {command} was not ready after 90 s:\n{output}")
