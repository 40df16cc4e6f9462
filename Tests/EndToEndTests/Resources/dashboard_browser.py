#!/usr/bin/env python3
"""Loads a CA's /dashboard in headless Chromium (selenium), reads the fleet table, applies the state
filter through the page's own form and saves a screenshot of the unfiltered page.

usage: dashboard_browser.py BASE_URL FILTER_STATE SCREENSHOT_PATH
prints JSON: {"title", "all": [[names, state, time left]...], "filtered": [...], "filtered_url",
"scripts", "refresh", "counts": {state: text}}

Chromium accepts the CA's certificate without checking it (acceptInsecureCerts): the end-to-end
test checks the same listener against the CA's root with curl.
"""
import json
import sys

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
    base, state, screenshot = sys.argv[1], sys.argv[2], sys.argv[3]
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1500,1300"]:
        options.add_argument(argument)
    options.set_capability("acceptInsecureCerts", True)
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
