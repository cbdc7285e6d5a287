"""Helpers shared by the page tests: waiting for the page script, reading its cards."""

from __future__ import annotations

PAGE_FIGURES = "measured"  # user_properties key printed at the end of the run (tests/conftest.py)


def wait_until(driver, script: str, timeout: float = 30.0):
    """Poll a JavaScript expression (`return ...`) until it is truthy; returns its value."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: d.execute_script(script))


def wait_ready(driver, timeout: float = 30.0) -> int:
    """Wait for the page script's first render; returns its ms after navigation."""
    return int(wait_until(driver, "return document.body.dataset.ready", timeout))


def cards(driver) -> list[dict]:
    """The grid's cards, in order: path, score (full precision), badge text, alt text, windows drawn."""
    return driver.execute_script("""
        return Array.from(document.querySelectorAll('#grid .card')).map((li) => ({
            path: li.dataset.path, score: Number(li.dataset.score), badge: li.querySelector('.badge').textContent,
            alt: (li.querySelector('img') || {}).alt || null,
            windows: li.querySelectorAll('svg.overlay rect.window').length}));""")
