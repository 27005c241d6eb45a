"""The web page at `/` in a real Chromium against a real `swintormer serve` on loopback.

Covers what a person does: choose or drop a photo, see it checked, choose the passes per tile,
send it, watch the tiles progress (or the queue position, and cancel), compare before and after
with the divider and the 1:1 view, see the estimated blur as an overlay, download the result
with the API's file name, read the gateway's refusals in plain words, and give an API key when
the server needs one.
Screenshots of the main states go to SCREENSHOT_DIR (printed at the end of the run).
"""

from __future__ import annotations

import base64
import io
import time
import zlib
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis
from PIL import Image, ImageDraw, ImageFilter
from rq.serializers import JSONSerializer
from selenium import webdriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from service.schemas import ModelLimits
from service.storage import Storage, limits_key
from tests.browser.chromium import API_KEY, Screenshot, Served

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.timeout(300)]

WIDTH, HEIGHT = 200, 150  # several 64 px tiles: progress to watch


def blurred_photo(path: Path) -> Path:
    """A defocused-looking PNG: shapes and text, then a Gaussian blur."""
    rng = np.random.default_rng(0)
    image = Image.new("RGB", (WIDTH, HEIGHT), (200, 210, 220))
    draw = ImageDraw.Draw(image)
    for _ in range(25):
        x, y, w, h = (int(v) for v in rng.integers((0, 0, 8, 8), (WIDTH, HEIGHT, 40, 40)))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.ellipse((x, y, x + w, y + h), fill=colour)
    draw.text((20, 60), "Swintormer", fill=(20, 20, 20))
    image.filter(ImageFilter.GaussianBlur(2.5)).save(path)
    return path


def state(browser: webdriver.Chrome) -> str:
    return str(browser.execute_script("return document.body.dataset.state || ''"))


def wait_for_state(browser: webdriver.Chrome, *states: str, timeout_s: float = 90) -> str:
    WebDriverWait(browser, timeout_s, poll_frequency=0.05).until(lambda b: state(b) in states)
    return state(browser)


def by_id(browser: webdriver.Chrome, element_id: str) -> WebElement:
    return browser.find_element(By.ID, element_id)


def open_page(browser: webdriver.Chrome, served: Served) -> None:
    browser.get(served.url + "/")
    browser.execute_script("sessionStorage.clear()")
    browser.get(served.url + "/")
    WebDriverWait(browser, 20).until(lambda b: by_id(b, "limits").text != "")


def choose(browser: webdriver.Chrome, path: Path) -> None:
    by_id(browser, "file-input").send_keys(str(path))


def console_errors(browser: webdriver.Chrome) -> list[str]:
    return [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def test_upload_progress_compare_overlay_and_download(
    browser: webdriver.Chrome,
    service: Served,
    download_dir: Path,
    tmp_path: Path,
    screenshot: Screenshot,
) -> None:
    open_page(browser, service)
    assert "Up to 67.1 MB and 50 megapixels" in by_id(browser, "limits").text
    screenshot("1-empty")
    choose(browser, blurred_photo(tmp_path / "blurry.png"))
    wait_for_state(browser, "chosen")
    assert f"{WIDTH} × {HEIGHT} px" in by_id(browser, "file-info").text
    by_id(browser, "start").click()

    seen: list[str] = []
    deadline = time.monotonic() + 90
    while state(browser) != "shown" and time.monotonic() < deadline:
        text = by_id(browser, "job-status").text
        if text and text not in seen:
            seen.append(text)
            if text.startswith("Restoring:") and len(seen) < 4:
                screenshot("2-progress")
        time.sleep(0.03)
    assert state(browser) == "shown", seen
    final = by_id(browser, "job-status").text
    done, total = (int(n) for n in final.removeprefix("Done: ").split(" tiles")[0].split(" of "))
    assert done == total > 1, final
    progress = by_id(browser, "job-progress")
    assert progress.get_attribute("value") == progress.get_attribute("max") == str(total)

    # the after image has the input's size
    natural = browser.execute_script(
        "const i = document.getElementById('after-image'); return [i.naturalWidth, i.naturalHeight]"
    )
    assert natural == [WIDTH, HEIGHT]
    screenshot("3-compare")

    # the divider moves with the pointer and with the keyboard
    divider = by_id(browser, "divider")
    assert divider.get_attribute("aria-valuenow") == "50"
    ActionChains(browser).click_and_hold(divider).move_by_offset(-60, 0).release().perform()
    dragged = int(divider.get_attribute("aria-valuenow") or "0")
    assert dragged < 50
    divider.send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)
    assert int(divider.get_attribute("aria-valuenow") or "0") == dragged + 3
    split = browser.execute_script(
        "return document.getElementById('compare').style.getPropertyValue('--split')"
    )
    assert split.endswith("%")
    assert abs(float(split[:-1]) - (dragged + 3)) < 1

    # a click away from the divider centres the 1:1 views there; arrow keys move them
    compare = by_id(browser, "compare")
    before_click = by_id(browser, "zoom-position").text
    size = compare.size
    ActionChains(browser).move_to_element_with_offset(
        compare, size["width"] // 2 - 10, size["height"] // 2 - 10
    ).click().perform()
    clicked = by_id(browser, "zoom-position").text
    assert clicked != before_click
    by_id(browser, "zoom").send_keys(Keys.ARROW_LEFT)
    assert by_id(browser, "zoom-position").text != clicked

    # the estimated blur (tiny-defocus has a front end) and its overlay
    summary = by_id(browser, "blur-summary")
    assert summary.is_displayed()
    assert "Estimated blur: median radius" in summary.text
    assert not by_id(browser, "overlay").is_displayed()
    by_id(browser, "overlay-toggle").click()
    assert by_id(browser, "overlay").is_displayed()
    overlay_size = browser.execute_script(
        "const c = document.getElementById('overlay'); return [c.width, c.height]"
    )
    assert overlay_size == [WIDTH, HEIGHT]
    screenshot("4-blur-overlay")
    by_id(browser, "overlay-toggle").click()

    # download: the API's file name and the API's bytes
    job_id = browser.execute_script("return document.body.dataset.jobId")
    api = httpx.get(f"{service.url}/jobs/{job_id}/result", timeout=10)
    assert api.status_code == 200
    name = api.headers["content-disposition"].split('filename="')[1].rstrip('"')
    assert name == "blurry-deblurred.png"
    link = by_id(browser, "download")
    assert link.get_attribute("download") == name
    link.click()
    target = download_dir / name
    WebDriverWait(browser, 20).until(lambda _: target.exists() and target.stat().st_size > 0)
    assert target.read_bytes() == api.content
    assert not [m for m in console_errors(browser) if "Content Security Policy" in m]
    # everything the page loaded came from the gateway (or from blob: URLs it made)
    loaded = browser.execute_script(
        "return performance.getEntriesByType('resource').map((entry) => entry.name)"
    )
    assert loaded
    assert [url for url in loaded if not url.startswith((service.url + "/", "blob:"))] == []


def test_refusals_in_plain_words(
    browser: webdriver.Chrome, service: Served, tmp_path: Path, screenshot: Screenshot
) -> None:
    open_page(browser, service)
    # refused in the browser, before any upload: not an image
    text_file = tmp_path / "notes.png"
    text_file.write_text("these are notes, not a photo")
    choose(browser, text_file)
    wait_for_state(browser, "refused")
    assert "not a PNG, JPEG, WebP, TIFF or HEIC" in by_id(browser, "upload-message").text
    assert not by_id(browser, "start").is_enabled()

    # passes the browser's checks (PNG signature and header), refused by the gateway
    truncated = tmp_path / "truncated.png"
    whole = io.BytesIO()
    Image.new("RGB", (64, 48), (90, 120, 150)).save(whole, "PNG")
    truncated.write_bytes(whole.getvalue()[:60])
    choose(browser, truncated)
    wait_for_state(browser, "chosen")
    by_id(browser, "start").click()
    wait_for_state(browser, "refused")
    message = by_id(browser, "upload-message").text
    assert "could not read this image" in message
    gateway = httpx.post(
        f"{service.url}/deblur", files={"file": ("truncated.png", truncated.read_bytes())}
    ).json()["error"]["message"]
    assert f"(server: {gateway})" in message
    screenshot("5-refused")


def test_drag_and_drop_a_photo(browser: webdriver.Chrome, service: Served) -> None:
    open_page(browser, service)
    buffer = io.BytesIO()
    Image.new("RGB", (48, 32), (10, 200, 30)).save(buffer, "PNG")
    browser.execute_script(
        """
        const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], "dropped.png", { type: "image/png" }));
        const zone = document.getElementById("drop-zone");
        for (const type of ["dragenter", "dragover", "drop"]) {
          zone.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true,
                                                   cancelable: true }));
        }
        """,
        base64.b64encode(buffer.getvalue()).decode(),
    )
    wait_for_state(browser, "chosen")
    assert by_id(browser, "file-info").text.startswith("dropped.png:")
    assert "48 × 32 px" in by_id(browser, "file-info").text
    assert by_id(browser, "start").is_enabled()


def test_queue_position_and_cancel(
    browser: webdriver.Chrome, idle_gateway: Served, tmp_path: Path, screenshot: Screenshot
) -> None:
    open_page(browser, idle_gateway)
    choose(browser, blurred_photo(tmp_path / "waiting.png"))
    wait_for_state(browser, "chosen")
    by_id(browser, "start").click()
    wait_for_state(browser, "queued")
    WebDriverWait(browser, 10).until(
        lambda b: by_id(b, "job-status").text.startswith("Queued: next in line")
    )
    screenshot("6-queued")
    by_id(browser, "cancel").click()
    wait_for_state(browser, "canceled", timeout_s=20)
    assert by_id(browser, "job-status").text == "Canceled."
    job_id = browser.execute_script("return document.body.dataset.jobId")
    assert httpx.get(f"{idle_gateway.url}/jobs/{job_id}").json()["status"] == "canceled"


def test_passes_per_tile_are_offered_and_sent(
    browser: webdriver.Chrome, idle_gateway: Served, service_env: dict[str, str], tmp_path: Path
) -> None:
    open_page(browser, idle_gateway)
    select = Select(by_id(browser, "self-ensemble"))
    assert [option.get_attribute("value") for option in select.options] == ["1", "2", "4", "8"]
    assert select.first_selected_option.text == "1 (fastest)"
    choose(browser, blurred_photo(tmp_path / "passes.png"))
    wait_for_state(browser, "chosen")
    select.select_by_value("4")
    by_id(browser, "start").click()
    wait_for_state(browser, "queued")
    job_id = browser.execute_script("return document.body.dataset.jobId")
    try:
        connection = redis.Redis.from_url(service_env["SWINTORMER_REDIS_URL"])
        data = connection.hget(f"rq:job:{job_id}", "data")
        assert isinstance(data, bytes)
        call = JSONSerializer.loads(zlib.decompress(data))
        assert call[3]["payload"]["options"]["self_ensemble"] == 4
    finally:
        by_id(browser, "cancel").click()
        wait_for_state(browser, "canceled", timeout_s=20)


def test_blur_refinement_is_offered_where_the_model_estimates_the_blur_and_sent(
    browser: webdriver.Chrome, idle_gateway: Served, service_env: dict[str, str], tmp_path: Path
) -> None:
    open_page(browser, idle_gateway)
    assert not by_id(browser, "refine-blur").is_displayed()  # no worker has said so yet
    connection = redis.Redis.from_url(service_env["SWINTORMER_REDIS_URL"])
    storage = Storage(connection)
    limits = ModelLimits(size_multiple=8, prior_steps=4, estimates_blur=True)
    storage.put_model_limits("browser-test-idle", limits)
    try:
        open_page(browser, idle_gateway)
        box = by_id(browser, "refine-blur")
        WebDriverWait(browser, 10).until(lambda _: box.is_displayed())
        assert not box.is_selected()  # the server's default
        choose(browser, blurred_photo(tmp_path / "refine.png"))
        wait_for_state(browser, "chosen")
        box.click()
        by_id(browser, "start").click()
        wait_for_state(browser, "queued")
        job_id = browser.execute_script("return document.body.dataset.jobId")
        data = connection.hget(f"rq:job:{job_id}", "data")
        assert isinstance(data, bytes)
        call = JSONSerializer.loads(zlib.decompress(data))
        assert call[3]["payload"]["options"]["refine_blur"] is True
        by_id(browser, "cancel").click()
        wait_for_state(browser, "canceled", timeout_s=20)
    finally:
        connection.delete(limits_key("browser-test-idle"))
        connection.close()


def test_a_full_queue_is_told_with_its_retry_after(
    browser: webdriver.Chrome, idle_gateway: Served, tmp_path: Path, screenshot: Screenshot
) -> None:
    photo = blurred_photo(tmp_path / "busy.png")
    waiting = httpx.post(
        f"{idle_gateway.url}/deblur", files={"file": ("a.png", photo.read_bytes())}
    )
    assert waiting.status_code == 202  # fills the queue (no worker serves it)
    try:
        open_page(browser, idle_gateway)
        choose(browser, photo)
        wait_for_state(browser, "chosen")
        by_id(browser, "start").click()
        wait_for_state(browser, "refused")
        message = by_id(browser, "upload-message").text
        assert "The server is busy: its queue is full. Try again in 5 seconds." in message
        assert by_id(browser, "start").is_enabled()  # the person may try again
        screenshot("7-queue-full")
    finally:
        httpx.delete(f"{idle_gateway.url}/jobs/{waiting.json()['id']}")


def test_api_key_is_asked_for_and_kept_for_the_tab(
    browser: webdriver.Chrome, keyed_gateway: Served, tmp_path: Path, screenshot: Screenshot
) -> None:
    open_page(browser, keyed_gateway)
    panel = by_id(browser, "key-panel")
    assert panel.is_displayed()
    screenshot("8-api-key")
    by_id(browser, "key-input").send_keys("not-the-key", Keys.ENTER)
    assert not panel.is_displayed()
    choose(browser, blurred_photo(tmp_path / "keyed.png"))
    wait_for_state(browser, "chosen")
    by_id(browser, "start").click()
    wait_for_state(browser, "refused")
    assert "API key was not accepted" in by_id(browser, "upload-message").text
    assert panel.is_displayed()

    by_id(browser, "key-input").send_keys(API_KEY, Keys.ENTER)
    assert browser.execute_script("return sessionStorage.getItem('swintormer.apiKey')") == API_KEY
    browser.find_element(By.CSS_SELECTOR, "input[name=output_format][value=jpeg]").click()
    assert by_id(browser, "quality").is_displayed()
    by_id(browser, "start").click()
    wait_for_state(browser, "shown")
    assert by_id(browser, "download").get_attribute("download") == "keyed-deblurred.jpeg"
    natural = browser.execute_script(
        "const i = document.getElementById('after-image'); return [i.naturalWidth, i.naturalHeight]"
    )
    assert natural == [WIDTH, HEIGHT]


def test_phone_width_and_keyboard_only(
    browser: webdriver.Chrome, service: Served, tmp_path: Path, screenshot: Screenshot
) -> None:
    browser.set_window_size(390, 844)
    try:
        open_page(browser, service)
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth"
        )
        assert overflow <= 0
        # keyboard: Tab reaches the drop zone first, then the format choice
        body = browser.find_element(By.TAG_NAME, "body")
        body.send_keys(Keys.TAB)
        assert browser.switch_to.active_element.get_attribute("id") == "drop-zone"
        choose(browser, blurred_photo(tmp_path / "phone.png"))
        wait_for_state(browser, "chosen")
        by_id(browser, "start").send_keys(Keys.ENTER)
        wait_for_state(browser, "shown")
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth"
        )
        assert overflow <= 0
        shown = by_id(browser, "before-image").rect
        assert shown["width"] <= 390
        assert abs(shown["width"] * HEIGHT / WIDTH - shown["height"]) <= 1.5  # not distorted
        browser.execute_script("document.getElementById('compare').scrollIntoView()")
        screenshot("9-phone")
    finally:
        browser.set_window_size(1280, 1000)
