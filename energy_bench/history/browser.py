"""Open a published site (or a report page) in a headless Chromium, as the tests, the scale benchmark and the
documentation's screenshot do: Playwright's Python package driving the system's Chromium (never a browser
Playwright downloads), with no network beyond the page's own files.

Screenshot of a published site's page (once its plots are drawn) or of a report page (once loaded)::

    python -m energy_bench.history.browser dashboard/index.html shot.png [--width 1280 --height 900 --full-page]

A page opened here reports its console errors, uncaught exceptions, dialogs (``alert``) and every request that left
``file://`` or the local server, so a check can tell "rendered" from "rendered with an error".
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from energy_bench.errors import EnergyBenchError

#: the browser: ``ENERGY_BENCH_CHROMIUM``, else Debian's package, else the first ``chromium`` on the PATH
CHROMIUM_ENV = "ENERGY_BENCH_CHROMIUM"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
#: how long a page may take to draw its plots (``body[data-rendered]``), in milliseconds
RENDER_TIMEOUT_MS = 30_000
#: the published site's script (energy_bench/history/site.js), which sets that mark
SITE_SCRIPT = "assets/site.js"


class BrowserUnavailable(EnergyBenchError, RuntimeError):
    """Playwright or Chromium is not installed: the message says which and how to get it."""


class PageNotDrawn(EnergyBenchError, RuntimeError):
    """A site page did not set its drawn mark in time (the message has the errors it reported)."""


def chromium_path() -> str:
    """The Chromium executable; :class:`BrowserUnavailable` when there is none."""
    candidate = os.environ.get(CHROMIUM_ENV) or DEFAULT_CHROMIUM
    if Path(candidate).is_file():
        return candidate
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    raise BrowserUnavailable(f"no Chromium at {candidate} (install Debian's 'chromium' package, or set {CHROMIUM_ENV})")


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A launched headless Chromium (Playwright ``Browser``), closed on exit."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise BrowserUnavailable("the playwright package is not installed (pip install playwright)") from None
    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=list(FLAGS), headless=True)
        try:
            yield browser
        finally:
            browser.close()


def _local(url: str) -> bool:
    return url.startswith(("file://", "data:", "about:", "http://127.0.0.1", "http://localhost"))


@dataclass
class Opened:
    """A page and what it reported while it loaded and drew."""

    page: Any
    errors: list[str] = field(default_factory=list)  # console errors and uncaught exceptions
    dialogs: list[str] = field(default_factory=list)  # alert/confirm/prompt messages (dismissed)
    remote: list[str] = field(default_factory=list)  # requests that left the local files (refused)


def open_page(
    browser: Any,
    url: str,
    *,
    width: int = 1280,
    height: int = 900,
    wait: bool | None = True,
    timeout_ms: int = RENDER_TIMEOUT_MS,
) -> Opened:
    """Open ``url`` in a fresh context, then, with ``wait``, until its plots are drawn (``body[data-rendered]``).

    ``wait=None``: only when the page is one of the published site's (its script sets the mark); any other page
    (the one-run report: images, no script) is drawn once it has loaded. A page that does not draw in time raises
    :class:`PageNotDrawn`.
    """
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    opened = Opened(page)
    page.on("console", lambda m: opened.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: opened.errors.append(str(exc)))

    def dialog(d: Any) -> None:
        opened.dialogs.append(d.message)
        d.dismiss()

    page.on("dialog", dialog)

    def route(r: Any) -> None:
        if _local(r.request.url):
            r.continue_()
        else:
            opened.remote.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.goto(url)
    if wait is None:
        wait = page.locator(f"script[src$='{SITE_SCRIPT}']").count() > 0
    if wait:
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            page.wait_for_selector("body[data-rendered=true]", timeout=timeout_ms)
        except PlaywrightTimeout:
            detail = "; ".join(opened.errors) or "no error reported"
            raise PageNotDrawn(f"{url}: the plots were not drawn within {timeout_ms / 1000:g} s ({detail})") from None
    return opened


def page_url(path: Path | str) -> str:
    """A ``file://`` URL of a local page (URLs are passed through)."""
    text = str(path)
    return text if "://" in text else Path(text).resolve().as_uri()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m energy_bench.history.browser", description=__doc__.split("\n")[0])
    parser.add_argument("page", help="a page of a published site (path or URL), e.g. dashboard/index.html")
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=900)
    parser.add_argument("--full-page", action="store_true", help="the whole page, not only the viewport")
    parser.add_argument(
        "--timeout",
        type=float,
        default=RENDER_TIMEOUT_MS / 1000,
        help="seconds a site page may take to draw (default %(default)g)",
    )
    args = parser.parse_args(argv)
    if not args.timeout > 0:
        parser.error("--timeout must be a positive number of seconds")
    if "://" not in args.page and not Path(args.page).is_file():
        parser.error(f"{args.page}: no such page")
    try:
        with chromium() as browser:
            opened = open_page(
                browser, page_url(args.page), width=args.width, height=args.height, wait=None,
                timeout_ms=round(args.timeout * 1000),
            )  # fmt: skip
            opened.page.screenshot(path=str(args.out), full_page=args.full_page)
    except BrowserUnavailable as exc:
        print(f"screenshot: {exc}", file=sys.stderr)
        return 2
    except PageNotDrawn as exc:
        print(f"screenshot: {exc}", file=sys.stderr)
        return 1
    for error in opened.errors:
        print(f"screenshot: the page reported: {error}", file=sys.stderr)
    print(f"wrote {args.out}")
    return 1 if opened.errors else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
