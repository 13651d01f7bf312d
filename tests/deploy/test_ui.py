"""The page at / in a real headless Chromium (Debian's chromium + chromium-driver, through Selenium):
type a text, submit, find the label, the probability bars and the highlighted n-grams."""

from __future__ import annotations

import shutil

import pytest

pytest.importorskip("fastapi")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install 'convtune[test]')")

CHROMIUM, DRIVER = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")


def browser():
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    if not (CHROMIUM and DRIVER):
        pytest.skip("no browser: install Debian's chromium and chromium-driver (make install-browser, as root)")
    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1000,900"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(DRIVER), options=options)


@pytest.fixture(scope="module")
def page_url(tiny_model_dir):
    from convtune.deploy.serve import spawn_server

    proc, url = spawn_server(tiny_model_dir)
    yield url
    proc.terminate()
    proc.wait(10)


def test_page_classifies_and_highlights(page_url, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser()
    try:
        driver.get(page_url + "/")
        WebDriverWait(driver, 20).until(lambda d: "head over" in d.find_element(By.ID, "about").text)
        driver.find_element(By.ID, "texts").send_keys("this movie was superb\na very bad plot")
        driver.find_element(By.ID, "go").click()
        WebDriverWait(driver, 30).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#results[data-done=true]")))
        cards = driver.find_elements(By.CSS_SELECTOR, ".result")
        assert len(cards) == 2
        for card in cards:
            rows = card.find_elements(By.CSS_SELECTOR, ".row")
            assert {r.get_attribute("data-label") for r in rows} == {"neg", "pos"}
            widths = [float(r.find_element(By.CSS_SELECTOR, ".bar").value_of_css_property("width").rstrip("px"))
                      for r in rows]
            assert widths[0] >= widths[1] > 0 or widths[0] > 0  # the top label first, drawn as a bar
            assert card.find_elements(By.CSS_SELECTOR, ".row.top .name")[0].text in ("neg", "pos")
            marks = card.find_elements(By.CSS_SELECTOR, "mark.ngram")
            assert marks and all(m.text.strip() for m in marks)
        assert driver.find_element(By.ID, "error").text == ""
        driver.save_screenshot(str(tmp_path / "page.png"))
        assert (tmp_path / "page.png").stat().st_size > 1000
    finally:
        driver.quit()


def test_highlights_land_on_the_same_characters_after_emoji(page_url):
    """The server's spans count code points; the page must cut the text the same way (an emoji is
    two UTF-16 units in JavaScript)."""
    import httpx
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    text = "😀🎬👍 the plot was superb 🍿 and the film was superb"
    spans = httpx.post(page_url + "/explain", json={"texts": [text]}).json()["explanations"][0]["ngrams"]
    kept, at = [], 0
    for g in sorted(spans, key=lambda g: g["start"]):
        if g["start"] >= at:
            kept.append(text[g["start"]:g["end"]])
            at = g["end"]
    assert kept and any(" " in t or t.isalpha() for t in kept)
    driver = browser()
    try:
        driver.get(page_url + "/")
        WebDriverWait(driver, 20).until(lambda d: "head over" in d.find_element(By.ID, "about").text)
        # ChromeDriver types only the basic plane: the emoji go in through the DOM.
        driver.execute_script("document.getElementById('texts').value = arguments[0];", text)
        driver.find_element(By.ID, "go").click()
        WebDriverWait(driver, 30).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#results[data-done=true]")))
        marks = driver.find_elements(By.CSS_SELECTOR, ".result mark.ngram")
        assert [m.get_attribute("textContent") for m in marks] == kept
        whole = driver.find_element(By.CSS_SELECTOR, ".result .text").get_attribute("textContent")
        assert whole == text
    finally:
        driver.quit()


def test_no_ui_serves_no_page(tiny_model_dir):
    import httpx

    from convtune.deploy.serve import spawn_server

    proc, url = spawn_server(tiny_model_dir, "--no-ui")
    try:
        assert httpx.get(url + "/").status_code == 405  # POST / (TEI) remains; no page
        assert httpx.get(url + "/health").status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)
