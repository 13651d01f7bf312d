"""docs/ui.png: the page at / of `convtune serve MODEL`, in headless Chromium, after classifying
a few texts.

    .venv/bin/python -m bench.serving.ui_screenshot --model runs/kept/sst2-finetune-s42-epochs_5 --out docs/ui.png
"""

from __future__ import annotations

import argparse
import shutil

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from convtune.deploy.serve import spawn_server

TEXTS = ["a gorgeous , witty , seductive movie .", "the plot is a mess and the jokes fall flat .",
         "not as bad as i feared , but far from the best of the series ."]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", default="docs/ui.png")
    a = ap.parse_args()
    proc, url = spawn_server(a.model)
    options = Options()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1000,820"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.get(url + "/")
        WebDriverWait(driver, 30).until(lambda d: "head over" in d.find_element(By.ID, "about").text)
        driver.find_element(By.ID, "texts").send_keys("\n".join(TEXTS))
        driver.find_element(By.ID, "go").click()
        WebDriverWait(driver, 60).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#results[data-done=true]")))
        driver.save_screenshot(a.out)
        print(f"saved {a.out}")
    finally:
        driver.quit()
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
