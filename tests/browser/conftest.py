"""Browser tests: the real app served on loopback, driven by Playwright in Debian's Chromium,
with axe-core accessibility checks and screenshots saved as artifacts."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
# As the machine's own probe runs it: no background network calls from the browser.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def pytest_collection_modifyitems(config, items):
    if shutil.which(CHROMIUM) or Path(CHROMIUM).exists():
        return
    if os.environ.get("CI"):
        raise pytest.UsageError(f"browser tests need Chromium at {CHROMIUM} (CI installs it)")
    skip = pytest.mark.skip(reason=f"no Chromium at {CHROMIUM}")
    for item in items:
        if "browser" in str(item.fspath):
            item.add_marker(skip)


@pytest.fixture
def live_server(app, demo):
    """The app on a free loopback port, in a thread, for the length of one test."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    context.close()


class Screens:
    """Save screenshots at desktop and mobile widths, and check each page with axe-core."""

    def __init__(self, page):
        self.page = page
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def check(self, name: str, *, mobile: bool = True) -> None:
        assert_accessible(self.page, name)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}-desktop.png"), full_page=True)
        if mobile:
            size = self.page.viewport_size
            self.page.set_viewport_size({"width": 390, "height": 844})
            self.page.screenshot(path=str(ARTIFACTS / f"{name}-mobile.png"), full_page=True)
            self.page.set_viewport_size(size)


def assert_accessible(page, name: str) -> None:
    """No serious or critical axe-core violations on the page."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert bad == [], f"{name}: " + "; ".join(bad)


@pytest.fixture
def screens(page) -> Screens:
    return Screens(page)


def sign_in(page, base_url: str, email: str, password: str = "stepdown-demo") -> None:  # noqa: S107
    page.goto(f"{base_url}/login")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
