"""The screenshots in docs/: the HTML report of AlexNet with CONV2 picked (docs/web_report.png) and
`archcalc serve`'s editor with CONV1's stride typed to 3 (docs/web_editor.png), taken in headless
Chromium as tests/test_browser.py drives it.

    python scripts/web_screenshots.py      # needs chromium, chromedriver, selenium and Graphviz
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parent.parent
SIZE = (1400, 1000)


def browser() -> webdriver.Chrome:
    os.environ.setdefault("SE_AVOID_STATS", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", f"--window-size={SIZE[0]},{SIZE[1]}",
                     "--force-device-scale-factor=1", "--hide-scrollbars"):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))


def box(driver, name: str):
    for node in driver.find_elements("css selector", ".ac-diagram g.node"):
        texts = node.find_elements("css selector", "text")
        if texts and texts[0].text == name:
            return node
    raise SystemExit(f"no box {name}")


def report(driver, folder: str) -> None:
    page = Path(folder) / "alexnet.html"
    subprocess.run([sys.executable, "-m", "archcalc", "inspect", str(ROOT / "specs/alexnet.yaml"), "-o", str(page)],
                   check=True)
    driver.get(page.as_uri())
    ActionChains(driver).click(box(driver, "CONV2")).perform()
    driver.save_screenshot(str(ROOT / "docs/web_report.png"))


def editor(driver, folder: str) -> None:
    spec = Path(folder) / "alexnet.yaml"
    shutil.copy(ROOT / "specs/alexnet.yaml", spec)
    server = subprocess.Popen([sys.executable, "-m", "archcalc", "serve", str(spec), "--port", "0"],
                              stderr=subprocess.PIPE, text=True)
    try:
        line = server.stderr.readline()  # 'serving alexnet.yaml at http://127.0.0.1:PORT/ ...'
        url = line.split(" at ", 1)[1].split()[0]
        driver.get(url)
        wait = WebDriverWait(driver, 10)
        wait.until(lambda d: d.find_elements("css selector", ".ac-diagram svg"))
        editor = driver.find_element("id", "ac-text")
        text = editor.get_attribute("value")
        at = text.index("stride: 4") + len("stride: ")
        driver.execute_script("arguments[0].focus(); arguments[0].setSelectionRange(arguments[1], arguments[1] + 1);",
                              editor, at)
        editor.send_keys("3")
        wait.until(lambda d: d.find_elements("css selector", ".ac-error"))
        wait.until(lambda d: d.find_elements("css selector", ".ac-diagram svg"))
        time.sleep(0.3)
        driver.save_screenshot(str(ROOT / "docs/web_editor.png"))
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    driver = browser()
    try:
        with tempfile.TemporaryDirectory() as folder:
            report(driver, folder)
            if "--report-only" not in sys.argv:
                editor(driver, folder)
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
