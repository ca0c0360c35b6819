"""The web page at / in a real headless Chromium against a real uvicorn server: a photo
recognized and boxed, errors shown, the API key kept, people enrolled and removed, and the
webcam loop fed by Chromium's fake camera."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from helpers import invoke_cli, running_server, write_photos

pytestmark = pytest.mark.web

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
KEY = "web-admin-key-0123456789"
KNOWN_RGB = (22, 163, 74)  # app.js's KNOWN colour


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """gallery/: s1-s3 to enrol; query/s2/8.jpg to recognize; new/s4/: someone to add."""
    root = tmp_path_factory.mktemp("web")
    write_photos(root / "gallery", ["s1", "s2", "s3"], range(1, 4))
    write_photos(root / "query", ["s2"], range(8, 9))
    write_photos(root / "new", ["s4"], range(1, 3))
    return root


@pytest.fixture(scope="module")
def url(photos: Path) -> Iterator[str]:
    """A real `facecnn serve` with an admin key, so the page must send it."""
    enrolled = invoke_cli("enroll", str(photos / "gallery"), "--gallery", str(photos / "g.db"),
                          "--min-quality", "0", "--quiet", cwd=photos)  # 3 photos each, all
    assert enrolled.returncode == 0, enrolled.stderr
    (photos / "keys.txt").write_text(f"{KEY} admin\n")
    with running_server(["--gallery", str(photos / "g.db"), "--api-key-file",
                         str(photos / "keys.txt")], photos) as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    """Headless Chromium with a fake camera that needs no permission prompt."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1200,800", "--use-fake-ui-for-media-stream",
                 "--use-fake-device-for-media-stream"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def wait_for(browser: webdriver.Chrome, condition: Callable[[Any], Any],
             timeout: float = 120) -> Any:  # generous for a busy machine; fails, not hangs
    return WebDriverWait(browser, timeout).until(condition)


def by_id(browser: webdriver.Chrome, element_id: str) -> Any:
    return browser.find_element(By.ID, element_id)


def table_rows(browser: webdriver.Chrome, table_id: str) -> list[list[str]]:
    """Read in one script, since the page may replace the rows between two WebDriver calls."""
    return browser.execute_script(
        "return Array.from(document.querySelectorAll(`#${arguments[0]} tbody tr`), "
        "tr => Array.from(tr.cells, td => td.textContent))", table_id)


def open_page(browser: webdriver.Chrome, url: str) -> None:
    browser.get(url)
    by_id(browser, "key").clear()
    by_id(browser, "key").send_keys(KEY)


def drop_file(browser: webdriver.Chrome, path: Path) -> None:
    """Drag-and-drop, as a drop event carrying the file (WebDriver cannot drag from the OS)."""
    browser.execute_script(
        "const bytes = Uint8Array.from(atob(arguments[0]), c => c.charCodeAt(0));"
        "const data = new DataTransfer();"
        "data.items.add(new File([bytes], arguments[1], {type: 'image/jpeg'}));"
        "document.getElementById('drop').dispatchEvent("
        "new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true}));",
        base64.b64encode(path.read_bytes()).decode(), path.name)


def test_photo_is_recognized_and_boxed(browser: webdriver.Chrome, url: str, photos: Path,
                                       tmp_path: Path) -> None:
    for path in ("", "static/app.js", "static/style.css", "docs"):  # no key needed
        assert httpx.get(url + path).status_code == 200, path
    browser.get(url)
    by_id(browser, "key").clear()
    query = photos / "query" / "s2" / "8.jpg"
    drop_file(browser, query)
    message = by_id(browser, "recognize-message")
    wait_for(browser, lambda _: "401" in message.text)
    assert "x-api-key" in message.text and "error" in message.get_attribute("class")

    by_id(browser, "key").send_keys(KEY)
    browser.refresh()  # the key is kept in localStorage
    assert by_id(browser, "key").get_attribute("value") == KEY
    by_id(browser, "photo").send_keys(str(query))
    message = by_id(browser, "recognize-message")
    rows = wait_for(browser, lambda b: table_rows(b, "faces"))
    assert [r[0] for r in rows] == ["s2"] and message.text == "1 face"
    x1, y1, _, y2 = (int(v) for v in rows[0][3].split(","))
    pixel = browser.execute_script(
        "return Array.from(document.getElementById('picture').getContext('2d')"
        ".getImageData(arguments[0], arguments[1], 1, 1).data)", x1, (y1 + y2) // 2)
    assert all(abs(a - b) < 30 for a, b in zip(pixel, KNOWN_RGB)), pixel  # the box's edge

    shot = tmp_path / "page.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_people_are_enrolled_and_removed(browser: webdriver.Chrome, url: str,
                                         photos: Path) -> None:
    open_page(browser, url)
    browser.find_element(By.CSS_SELECTOR, '.tab[data-tab="people"]').click()
    wait_for(browser, lambda b: [r[:2] for r in table_rows(b, "gallery")]
             == [["s1", "3"], ["s2", "3"], ["s3", "3"]])
    by_id(browser, "name").send_keys("Dora Maar")  # a space: the URL must be encoded
    by_id(browser, "images").send_keys("\n".join(str(p) for p in
                                                 sorted((photos / "new" / "s4").iterdir())))
    by_id(browser, "enrol").submit()
    wait_for(browser, lambda b: ["Dora Maar", "2", "FacesRemove"] in table_rows(b, "gallery"))
    enrolled = by_id(browser, "people-message").text
    assert enrolled.startswith("enrolled Dora Maar: 2 faces added; unknown beyond 0.")
    assert enrolled.endswith(" (calibrated)")

    browser.find_element(By.XPATH, "//table[@id='gallery']//tr[td[1]='Dora Maar']"
                                   "//button[text()='Remove']").click()
    alert = wait_for(browser, expected_conditions.alert_is_present())
    assert "Dora Maar" in alert.text
    alert.accept()
    wait_for(browser, lambda b: len(table_rows(b, "gallery")) == 3)
    removed = by_id(browser, "people-message").text
    assert removed.startswith("removed Dora Maar (2 faces); unknown beyond 0.")
    assert removed.endswith(" (calibrated)")


def test_unnamed_tab_needs_a_cluster_folder(browser: webdriver.Chrome, url: str) -> None:
    """This server was started without --clusters: the tab says how to start one."""
    open_page(browser, url)
    browser.find_element(By.CSS_SELECTOR, '.tab[data-tab="unnamed"]').click()
    message = by_id(browser, "unnamed-message")
    wait_for(browser, lambda _: "--clusters DIR" in message.text)
    assert message.text.startswith("404: ") and "error" in message.get_attribute("class")
    assert not browser.find_elements(By.CSS_SELECTOR, "#clusters li")


def test_webcam_frames_are_recognized(browser: webdriver.Chrome, url: str) -> None:
    open_page(browser, url)
    browser.execute_script("performance.clearResourceTimings()")
    by_id(browser, "camera-start").click()
    state = by_id(browser, "state")
    wait_for(browser, lambda _: re.fullmatch(r"\d+ faces?", state.text))
    frames = browser.execute_script(
        "return performance.getEntriesByType('resource')"
        ".filter(e => e.name.endsWith('/v1/recognize')).length")
    assert frames >= 1
    by_id(browser, "camera-stop").click()
    assert browser.execute_script("return document.getElementById('video').srcObject") is None
    assert not by_id(browser, "live").is_displayed()
    assert by_id(browser, "recognize-message").text == "camera off"
