"""A real browser: Debian's Chromium, headless, through ChromeDriver; what it saw is kept as
screenshots in test-artifacts/."""

from __future__ import annotations

import shutil

import pytest

from tests.support import ROOT

ARTIFACTS = ROOT / "test-artifacts"  # screenshots of what the browser tests saw


def chromium():
    """Headless Chromium through ChromeDriver, at a desktop's window size."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("google-chrome") or "/usr/bin/chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1440,1200",
    ):
        options.add_argument(flag)
    ARTIFACTS.mkdir(exist_ok=True)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options)


def log_in(driver, base: str, password: str) -> None:
    """Through Airflow's login page, as a person does: the UI keeps the session in a cookie."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    driver.get(base + "/")
    wait(driver, ec.presence_of_element_located((By.NAME, "username"))).send_keys("admin")
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(driver, lambda d: "login" not in d.current_url)


def wait(driver, condition, timeout: float = 60):
    """Wait for `condition`; on a timeout, keep a screenshot of what the browser showed instead."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout).until(condition)
    except TimeoutException:
        driver.save_screenshot(str(ARTIFACTS / "timeout.png"))
        pytest.fail(f"timed out after {timeout:.0f} s on {driver.current_url}; see test-artifacts/timeout.png")
