"""One headless Chromium for every browser test of the session (Debian's chromium through Playwright).

Without Playwright or Chromium the tests skip with the reason, except in CI (``CI=true``), where the browser is
part of the job (``.ci/run`` installs it) and its absence fails them.
"""

from __future__ import annotations

import os

import pytest

from energy_bench.history import browser as eb_browser


def _unavailable(reason: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI=true, so the browser tests must run", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium():
    try:
        with eb_browser.chromium() as launched:
            yield launched
    except eb_browser.BrowserUnavailable as exc:
        _unavailable(str(exc))


@pytest.fixture
def open_page(chromium):
    """open_page(path_or_url, wait=True) -> Opened; each page closed after the test."""
    opened = []

    def _open(target, **kwargs):
        page = eb_browser.open_page(chromium, eb_browser.page_url(target), **kwargs)
        opened.append(page)
        return page

    yield _open
    for page in opened:
        page.page.context.close()
