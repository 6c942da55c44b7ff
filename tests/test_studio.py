"""The studio in a real browser: Debian's chromium, headless, driven by Selenium, clicks through start → listen →
continue → back → branch → choose → upsample → export with a tiny random bundle, and bad input is shown in the
page while the server lives on. A screenshot of each step is saved (to $OPENJUKEBOX_SCREENSHOTS when set: that is
how docs/studio-*.png are made)."""

import json
import os
import threading
import urllib.request
from pathlib import Path

import pytest
import soundfile as sf
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from openjukebox.bundle import init_bundle
from openjukebox.studio import serve

RATE = 16000  # the tiny preset's


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("bundle") / "tiny"
    init_bundle("tiny", path, artists=["ann", "bob", "unknown"], genres=["rock", "jazz", "unknown"])
    return path


@pytest.fixture(scope="module")
def browser():
    options = Options()
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,1400"):
        options.add_argument(flag)
    options.binary_location = "/usr/bin/chromium"
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    yield driver
    driver.quit()


@pytest.fixture
def studio(bundle_dir, tmp_path):
    server = serve(tmp_path / "song", model=str(bundle_dir), port=0, device="cpu")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path / "song"
    server.shutdown()
    server.server_close()


def wait(driver, timeout: float) -> WebDriverWait:
    """A wait that looks again when the page re-rendered what it was looking at."""
    return WebDriverWait(driver, timeout, ignored_exceptions=[StaleElementReferenceException])


def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("OPENJUKEBOX_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def idle(driver, timeout=120):
    wait(driver, timeout).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-busy") == "no")


def nodes(driver) -> list[str]:
    return [n.get_attribute("data-id") for n in driver.find_elements(By.CSS_SELECTOR, ".node")]


def node(driver, key):
    return driver.find_element(By.CSS_SELECTOR, f'.node[data-id="{key}"]')


def test_start_listen_continue_branch_choose_upsample_export(browser, studio, tmp_path):
    url, folder = studio
    out = shots(tmp_path)
    browser.get(url)
    wait(browser, 30).until(lambda d: d.find_element(By.ID, "start-form").is_displayed())
    Select(browser.find_element(By.ID, "artist")).select_by_visible_text("ann")
    Select(browser.find_element(By.ID, "genres")).select_by_visible_text("rock")
    browser.save_screenshot(str(out / "studio-1-new.png"))
    browser.find_element(By.ID, "create").click()
    wait(browser, 30).until(lambda d: d.find_element(By.ID, "work").is_displayed())
    for field, value in (("seconds", "0.5"), ("n", "2")):
        browser.find_element(By.ID, field).clear()
        browser.find_element(By.ID, field).send_keys(value)
    browser.find_element(By.ID, "extend-start").click()
    wait(browser, 120).until(lambda d: nodes(d) == ["n1", "n2"])
    idle(browser)
    # Listen: each candidate's preview is served and decodable (its waveform is drawn from it), and the browser
    # reads its length.
    wait(browser, 30).until(lambda d: all(c.get_attribute("data-drawn") == "yes"
                                                   for c in d.find_elements(By.CSS_SELECTOR, ".node canvas")))
    duration = browser.execute_async_script(
        "const done = arguments[0], a = document.querySelector('.node audio.preview');"
        "a.preload = 'metadata'; a.onloadedmetadata = () => done(a.duration); a.load();")
    assert abs(duration - 0.5) < 0.01
    browser.save_screenshot(str(out / "studio-2-candidates.png"))
    # Continue n1, then go back to it and branch again.
    node(browser, "n1").find_element(By.CSS_SELECTOR, ".extend").click()
    wait(browser, 120).until(lambda d: len(nodes(d)) == 4)
    idle(browser)
    node(browser, "n1").find_element(By.CSS_SELECTOR, ".extend").click()
    wait(browser, 120).until(lambda d: len(nodes(d)) == 6)
    idle(browser)
    children = [n.get_attribute("data-id") for n in node(browser, "n1").find_elements(By.CSS_SELECTOR, ".node")]
    assert children == ["n3", "n4", "n5", "n6"] and nodes(browser)[-1] == "n2"
    state = json.loads(urllib.request.urlopen(url + "/api/state").read())
    assert {n["id"]: n["seconds"] for n in state["nodes"]}["n6"] == 1.0
    # Choose n4, upsample the path, export it.
    node(browser, "n4").find_element(By.CSS_SELECTOR, ".pick").click()
    wait(browser, 30).until(lambda d: "chosen" in node(d, "n4").get_attribute("class"))
    browser.find_element(By.ID, "upsample").click()
    wait(browser, 300).until(lambda d: node(d, "n4").find_elements(By.CSS_SELECTOR, "audio.finished"))
    idle(browser)
    browser.save_screenshot(str(out / "studio-3-finished.png"))
    browser.find_element(By.ID, "export-flac").click()
    wait(browser, 30).until(lambda d: d.find_element(By.ID, "export-link").is_displayed())
    exported = folder / "export" / "n4.flac"
    assert sf.info(exported).frames == RATE and (folder / "finished" / "n4" / "sample-0-level0.wav").is_file()
    browser.save_screenshot(str(out / "studio-4-exported.png"))
    # A mistake is a message in the page; the server carries on.
    browser.find_element(By.ID, "seconds").clear()
    browser.find_element(By.ID, "seconds").send_keys("0")
    browser.find_element(By.ID, "extend-start").click()
    wait(browser, 30).until(lambda d: "must be positive" in d.find_element(By.ID, "error").text)
    assert json.loads(urllib.request.urlopen(url + "/api/state").read())["created"]


def test_a_file_that_is_not_audio_is_refused_in_the_page(browser, studio, tmp_path):
    url, folder = studio
    bad = tmp_path / "notes.wav"
    bad.write_text("these are not samples")
    browser.get(url)
    wait(browser, 30).until(lambda d: d.find_element(By.ID, "start-form").is_displayed())
    browser.find_element(By.ID, "prompt-file").send_keys(str(bad))
    wait(browser, 30).until(lambda d: "notes.wav" in d.find_element(By.ID, "error").text)
    assert not folder.exists()  # nothing written
    assert not json.loads(urllib.request.urlopen(url + "/api/state").read())["created"]
