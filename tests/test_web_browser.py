"""`press serve` end to end in a real headless browser: Debian's Chromium driven by Selenium.

Starts the page with the shipped default model on a free localhost port, uploads a built-in test
mixture (its first 10 s at most), runs it and checks that the separated speakers' players, the exit map, every exit's
predicted exit-SNR bands and the compute summary appear, that the page fetched nothing from outside
this machine, and that picking a built-in mixture from the menu loads it into the input player. Prints the time from
upload to result; PRESS_WEB_SCREENSHOT=docs/serve.png also saves the page there (the README's).

Needs the `dev` extra (gradio, selenium) and the Debian packages `chromium` and `chromium-driver`
(.ci/run installs them when it runs as root); skipped with the reason where they are missing.
"""

import json
import os
import shutil
import socket
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
import soundfile as sf

pytest.importorskip("gradio", reason='the web page needs gradio: pip install -e ".[web]" (or ".[dev]")')
pytest.importorskip("selenium", reason='the browser test drives Chromium with selenium: pip install -e ".[dev]"')

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.skipif(not (CHROMIUM and DRIVER),
                       reason="no headless browser: install Debian's chromium and chromium-driver (apt-get install "
                              "chromium chromium-driver; .ci/run does as root)"),
    pytest.mark.filterwarnings("ignore::Warning:gradio.queueing"),   # Gradio's own pandas deprecations
]

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,1700"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture
def server(monkeypatch):
    from press.api import load
    from press.web.app import start
    from press.web.page import WorkArea

    port = _free_port()
    work = WorkArea()
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(work.cache))      # start() sets it; restored after the test
    page = start(load("default", device="cpu"), work, "127.0.0.1", port)
    yield f"http://127.0.0.1:{port}/", work
    page.close(verbose=False)
    work.close()
    assert not work.root.exists()


def _results_shown(driver) -> bool:
    """Both speakers' players hold their WAV (a player and its download link), the exit map and the
    exit-SNR bands their images."""
    return driver.execute_script("""
        const player = j => !!document.querySelector(`#press-speaker-${j} audio`) &&
            (document.querySelector(`#press-speaker-${j} a[download]`)?.href || '').endsWith(`_s${j}.wav`);
        const image = id => !!document.querySelector(`#${id} img`)?.getAttribute('src');
        return player(1) && player(2) && image('press-exit-map') && image('press-bands')
            && document.querySelector('#press-summary').innerText.includes('GMAC/s');""")


def test_upload_separate_listen_and_see_the_exit_map_and_bands(browser, server, tmp_path, capsys):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    from press.web.page import write_builtin

    url, work = server
    x, sr = sf.read(str(write_builtin("tts #3", 8000, tmp_path)))      # two synthetic voices
    x = x[: 10 * sr]                    # its length follows the corpus; the summary must report it
    ten = tmp_path / "mixture10s.wav"
    sf.write(str(ten), x, sr)

    browser.get(url)
    upload = WebDriverWait(browser, 30).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#press-input input[type=file]"))[0]
    start = time.perf_counter()
    upload.send_keys(str(ten))
    # The run button waits for the upload to land: the input's player then links the file.
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#press-input a[download]"))
    browser.find_element(By.ID, "press-run").click()
    WebDriverWait(browser, 120, poll_frequency=0.1).until(_results_shown)
    seconds = time.perf_counter() - start

    summary = browser.find_element(By.ID, "press-summary").text
    assert f"on {len(x) / sr:.1f} s of audio" in summary and "every segment to exit 3" in summary
    players = browser.find_elements(By.CSS_SELECTOR, "[id^=press-speaker-] audio")
    assert len(players) == 2
    bands = browser.find_element(By.CSS_SELECTOR, "#press-bands img").get_attribute("src")
    assert bands.split("?")[0].endswith("_bands.png"), bands      # the bands, not the fallback figure
    files = browser.find_elements(By.CSS_SELECTOR, "#press-files a")
    assert any(a.text.endswith(".json") or a.get_attribute("href").endswith(".json") for a in files)
    assert any(p.iterdir() for p in work.sessions.iterdir())     # this session's request folder

    # Offline: every request the page made went to this machine (or stayed in the browser).
    outside = set()
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            u = urlparse(message["params"]["request"]["url"])
            if u.scheme in ("http", "https", "ws", "wss") and u.hostname not in ("127.0.0.1", "localhost"):
                outside.add(f"{u.scheme}://{u.hostname}{u.path}")
    assert not outside, f"the page fetched from outside this machine: {sorted(outside)}"

    shot = Path(os.environ.get("PRESS_WEB_SCREENSHOT") or tmp_path / "serve.png")
    browser.set_window_size(1280, browser.execute_script("return document.documentElement.scrollHeight") + 120)
    browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:4] == b"\x89PNG"

    # Picking a built-in test mixture puts it in the input player, ready to run.
    menu = browser.find_element(By.CSS_SELECTOR, "#press-builtin input")
    menu.click()
    menu.send_keys("real #1", Keys.ENTER)
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.CSS_SELECTOR, "#press-input a[download]")
                                     .get_attribute("href").endswith("builtin-real-1.wav"))
    with capsys.disabled():
        print(f"\npress serve: {len(x) / sr:.1f} s mixture, upload to result in {seconds:.1f} s (screenshot {shot})")
