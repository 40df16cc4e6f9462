#!/usr/bin/env python3
"""Loads a CA's /dashboard in headless Chromium (selenium), reads the fleet table, applies the state
filter through the page's own form and saves a screenshot of the unfiltered page.

usage: dashboard_browser.py BASE_URL FILTER_STATE SCREENSHOT_PATH INTERMEDIATE_PEM
prints JSON: {"title", "all": [[names, state, time left]...], "filtered": [...], "filtered_url",
"scripts", "refresh", "counts": {state: text}}

Chromium does not know the CA's root; it accepts the listener's chain only because it holds the
CA intermediate's key (--ignore-certificate-errors-spki-list with that key's SHA-256): a listener
with another key is refused. The end-to-end test also checks the listener against the root with curl.
"""
import base64
import hashlib
import json
import sys

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait


def rows(driver):
    found = []
    for row in driver.find_elements(By.CSS_SELECTOR, "table#fleet tbody tr[data-state]"):
        cells = row.find_elements(By.TAG_NAME, "td")
        found.append([cells[1].text, row.get_attribute("data-state"), cells[2].text])
    return found


def main():
    base, state, screenshot, intermediate = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    with open(intermediate, "rb") as file:
        key = x509.load_pem_x509_certificate(file.read()).public_key()
    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    pin = base64.b64encode(hashlib.sha256(spki).digest()).decode()
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1500,1300",
        "--ignore-certificate-errors-spki-list=" + pin,
    ]:
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(30)
    try:
        driver.get(base + "/dashboard")
        result = {
            "title": driver.title,
            "all": rows(driver),
            "scripts": len(driver.find_elements(By.TAG_NAME, "script")),
            "refresh": [m.get_attribute("content") for m in driver.find_elements(By.CSS_SELECTOR, 'meta[http-equiv="refresh"]')],
            "counts": {e.get_attribute("id"): e.text for e in driver.find_elements(By.CSS_SELECTOR, "a[id^=count-]")},
        }
        driver.save_screenshot(screenshot)
        Select(driver.find_element(By.ID, "filter-state")).select_by_value(state)
        driver.find_element(By.ID, "filter-apply").click()
        WebDriverWait(driver, 15).until(lambda d: "state=" in d.current_url)
        result["filtered"] = rows(driver)
        result["filtered_url"] = driver.current_url
        print(json.dumps(result))
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
