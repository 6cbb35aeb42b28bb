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
POLL = 0.05  # seconds between looks (Selenium's default, half a second, idled about 2 s of each run)


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

    return WebDriverWait(driver, WAIT, poll_frequency=POLL).until(lambda _: condition(), message)


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


@pytest.fixture()
def editor(browser, tmp_path):
    import threading

    from archcalc.views.server import Server

    spec = tmp_path / "alexnet.yaml"
    spec.write_text((SPECS / "alexnet.yaml").read_text())
    server = Server(str(spec), port=0, workers=1)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    browser.get(server.url)
    wait_for(browser, lambda: browser.find_elements("css selector", ".ac-view .ac-layers"), "no report")
    wait_for(browser, lambda: browser.find_elements("css selector", ".ac-view .ac-diagram svg"), "no diagram")
    yield browser, spec
    server.shutdown()
    server.server_close()


def type_at(driver, after: str, keys: str) -> None:
    """Select the character right after the first ``after`` in the editor and type ``keys`` over it."""
    text = driver.find_element("id", "ac-text")
    at = text.get_attribute("value").index(after) + len(after)
    driver.execute_script("arguments[0].focus(); arguments[0].setSelectionRange(arguments[1], arguments[1] + 1);",
                          text, at)
    text.send_keys(keys)


def shown(driver) -> dict:
    """{layer: output} of the report's table, and the texts of the diagram's boxes (one round trip)."""
    return driver.execute_script("""
        const table = {};
        document.querySelectorAll(".ac-view .ac-layers tr[data-boxes]:not(.ac-invalid)").forEach(row => {
            table[row.cells[0].textContent] = row.cells[2].textContent; });
        const boxes = [...document.querySelectorAll(".ac-view .ac-diagram g.node")].map(node =>
            [...node.querySelectorAll("text")].map(t => t.textContent.trim()).join(" "));
        return {table: table, boxes: boxes};""")


def test_editor_stride_change_shows_the_error_at_its_line_and_back(editor):
    driver, spec = editor
    before = shown(driver)
    assert before["table"]["CONV1"] == "96x55x55" and before["table"]["FC8"] == "1000"
    assert any(box.startswith("CONV1 conv 96 11x11, stride 4, relu 96x55x55") for box in before["boxes"])

    type_at(driver, "stride: ", "3")  # CONV1's stride: 4 -> 3
    wait_for(driver, lambda: driver.find_elements("css selector", ".ac-view .ac-error"), "no error shown")
    problem = driver.find_element("id", "ac-problem")
    assert problem.is_displayed()
    assert problem.text.startswith("alexnet.yaml:16:34: error: layer POOL2: invalid D-F-S combination along H: "
                                   "(36-3+2*0)/2+1 = 17.5 is not whole")
    assert "hint: try padding: same (-> 18), stride 1 (-> 34)" in problem.text
    marked = driver.find_elements("css selector", ".ac-gutter span.ac-err")
    assert [number.text for number in marked] == ["16"]
    band = driver.find_element("css selector", ".ac-band")
    assert abs(band.rect["y"] - marked[0].rect["y"]) <= 2  # the band lies across line 16
    at = driver.find_element("css selector", ".ac-at")
    assert at.is_displayed() and at.rect["x"] > band.rect["x"] + 30 * 7  # at column 34, not the line's start
    wait_for(driver, lambda: any("POOL2" in box and "17.5" in box for box in shown(driver)["boxes"]),
             "the diagram does not show POOL2 in red")
    failed = shown(driver)
    assert failed["table"]["CONV1"] == "96x73x73" and "FC8" not in failed["table"]
    invalid = driver.find_element("css selector", ".ac-view tr.ac-invalid")
    assert invalid.text.startswith("POOL2")

    type_at(driver, "stride: ", "4")  # and back
    wait_for(driver, lambda: not driver.find_elements("css selector", ".ac-view .ac-error"), "the error stays")
    wait_for(driver, lambda: shown(driver) == before, "the table and diagram are not restored")
    assert not driver.find_element("id", "ac-problem").is_displayed()
    assert not driver.find_elements("css selector", ".ac-gutter span.ac-err")
    assert "ac-dirty" not in driver.find_element("tag name", "body").get_attribute("class")

    type_at(driver, "name: AlexNet", "\n# edited in the browser\n")
    driver.find_element("id", "ac-save").click()
    wait_for(driver, lambda: driver.find_element("id", "ac-saving").text == "saved alexnet.yaml", "not saved")
    assert "# edited in the browser" in spec.read_text()
