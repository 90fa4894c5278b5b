"""Fixtures for the web client's tests in headless Chromium (Playwright).

Chromium is Debian's `chromium` package (Playwright's own browser download
cannot be used here), driven by Playwright's sync API from this
gevent-patched process: while a test waits on the page, Playwright's event
loop blocks in gevent's select, so the in-process server keeps serving.
Browser tests run on SQLite only; the server-restart test runs the server as
a subprocess (`python wsgi.py`) so that it can be killed and started again.

Screenshots of every scenario go to one folder under pytest's temporary
directory; its path is printed at the end of the run.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ..conftest import IN_CI
from ..smtp_sink import SmtpSink

CHROMIUM = os.environ.get("IMBOY_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
_shots_dir: list[Path] = []


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives the web client in headless Chromium")


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents and "chromium" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)


def pytest_terminal_summary(terminalreporter):
    if _shots_dir and any(_shots_dir[0].iterdir()):
        terminalreporter.write_line(f"browser screenshots: {_shots_dir[0]}")


def _unavailable(reason: str):
    if IN_CI:
        pytest.fail(f"browser tests need {reason} under CI=true")
    pytest.skip(reason)


@pytest.fixture
def backend():
    """Browser tests run on SQLite only; the API tests cover MariaDB."""
    return "sqlite"


@pytest.fixture(scope="session")
def playwright_instance():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package (pip install playwright)")
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        _unavailable(f"Chromium at {CHROMIUM} (apt-get install chromium)")
    manager = sync_playwright()
    pw = manager.start()
    yield pw
    manager.__exit__(None, None, None)


@pytest.fixture(scope="session")
def chromium(playwright_instance):
    browser = playwright_instance.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def new_context(chromium):
    """Browser contexts (separate storage: one per simulated person), closed after the test."""
    contexts = []

    def make(phone: bool = False):
        if phone:
            context = chromium.new_context(viewport={"width": 390, "height": 780}, device_scale_factor=1,
                                           is_mobile=True, has_touch=True)
        else:
            context = chromium.new_context(viewport={"width": 1100, "height": 700})
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        try:
            context.close()
        except Exception:
            pass


@pytest.fixture(scope="session")
def screenshots_root(tmp_path_factory):
    path = tmp_path_factory.mktemp("browser-screenshots", numbered=True)
    _shots_dir.append(path)
    return path


@pytest.fixture
def shot(screenshots_root, request):
    """shot(page, name): a PNG named after the test and the step."""
    folder = screenshots_root / request.node.name.replace("[", "-").replace("]", "")
    folder.mkdir(exist_ok=True)
    counter = iter(range(1, 100))

    def take(page, name: str) -> Path:
        path = folder / f"{next(counter):02d}-{name}.png"
        page.screenshot(path=str(path))
        return path

    return take


@pytest.fixture
def smtp_sink():
    sink = SmtpSink(auth=False).start()
    yield sink
    sink.stop()


@pytest.fixture
def app(make_app, smtp_sink):
    """The app with its mail going to the test SMTP listener.

    No default avatar URL: the page would try to fetch it from the internet.
    """
    return make_app(SMTP_HOST="127.0.0.1", SMTP_PORT=smtp_sink.port, DEFAULT_AVATAR="")
