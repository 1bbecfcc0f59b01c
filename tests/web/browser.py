"""Debian's chromium, headless, driven through its chromedriver (selenium), at phone size."""

from __future__ import annotations

import shutil

import pytest

PHONE = (390, 844)


def chromium_paths() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or "/usr/lib/chromium/chromedriver"
    if browser is None or not shutil.which(driver):
        pytest.fail("chromium and chromium-driver are not installed: run `make test`, which "
                    "installs them")
    return browser, driver


def phone_browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={PHONE[0]},{PHONE[1]}", "--hide-scrollbars"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver), options=options)
    # Headless chromium keeps a window at least 500 px wide whatever --window-size says: the
    # page must be laid out (and photographed) on a phone's viewport, so emulate one.
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": PHONE[0], "height": PHONE[1], "deviceScaleFactor": 1, "mobile": True})
    return driver
