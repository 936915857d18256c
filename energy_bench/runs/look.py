"""One look for every HTML page energy-bench writes: the one-run report (``energy-bench report --html``) and the
published history site (``energy-bench publish``) share this style sheet and page skeleton.

Every text put into a page goes through :func:`html.escape` here or in the caller; data for scripts goes through
:func:`script_json`, which cannot end its ``<script>`` element whatever the names in it contain.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

STYLE = """
:root { --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --head: #f6f8fa; --accent: #1a7f37;
  --bad: #cf222e; --good: #1a7f37; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
  max-width: 1200px; margin: 0 auto; padding: 0 1.5em 3em; line-height: 1.45; }
header.eb { display: flex; align-items: baseline; gap: 1.5em; flex-wrap: wrap; border-bottom: 2px solid var(--accent);
  padding: 0.8em 0 0.4em; margin-bottom: 1em; }
header.eb .brand { font-weight: 700; color: var(--accent); }
header.eb nav a { margin-right: 1em; color: var(--ink); }
h1 { font-size: 1.6em; margin: 0.4em 0; overflow-wrap: anywhere; }
h2 { font-size: 1.25em; margin: 1.4em 0 0.4em; overflow-wrap: anywhere; }
h3 { font-size: 1.05em; margin: 1em 0 0.3em; }
a { color: #0969da; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.92em; }
th, td { border: 1px solid var(--line); padding: 0.25em 0.6em; text-align: right; vertical-align: top; }
th { background: var(--head); }
td:nth-child(2), th:nth-child(2), td.name, th.name { text-align: left; }
td.name { overflow-wrap: anywhere; }
.verdicts { overflow-x: auto; }
.verdicts td, .verdicts th { text-align: left; }
.verdicts th { overflow-wrap: anywhere; }  /* variant names have no spaces: let them wrap, not widen the table */
.verdicts td:first-child { font-weight: 600; }
td.regression, .regression { color: var(--bad); }
td.improvement, .improvement { color: var(--good); }
.note, .muted { color: var(--muted); font-size: 0.9em; }
.summary { background: var(--head); border-left: 4px solid var(--accent); padding: 0.4em 1em; margin: 1em 0; }
.summary ul { margin: 0.3em 0; padding-left: 1.3em; }
.filters { display: flex; gap: 1.2em; align-items: center; margin: 0.6em 0 1em; flex-wrap: wrap; }
.filters label { font-size: 0.92em; }
.plot { width: 100%; min-height: 360px; }
.figures { display: flex; flex-wrap: wrap; gap: 1%; }
.figures img { max-width: 49%; vertical-align: top; }
svg.spark { vertical-align: middle; }
"""


def header(nav: Sequence[tuple[str, str]] = ()) -> str:
    """The bar on top of every page: the name and links (``(href, text)``, both escaped)."""
    links = "".join(f'<a href="{html.escape(href)}">{html.escape(text)}</a>' for href, text in nav)
    return f'<header class="eb"><span class="brand">energy-bench</span><nav>{links}</nav></header>'


def page(
    title: str,
    body: str,
    *,
    nav: Sequence[tuple[str, str]] = (),
    stylesheet: str | None = None,
    scripts: Sequence[str] = (),
    attributes: str = "",
) -> str:
    """A whole HTML page. ``body`` is markup the caller built (its texts escaped); ``title`` is escaped here.

    ``stylesheet``: a link to the style sheet (the site has one file); without it the style is inlined (the report
    is one self-contained file). ``scripts``: script files, in order. ``attributes``: of ``<body>``, built by the
    caller from escaped values.
    """
    style = f'<link rel="stylesheet" href="{html.escape(stylesheet)}">' if stylesheet else f"<style>{STYLE}</style>"
    tags = "".join(f'<script src="{html.escape(src)}"></script>' for src in scripts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title>{style}</head>\n"
        f"<body{attributes}>\n{header(nav)}\n{body}\n{tags}\n</body></html>\n"
    )


def script_json(data: Any, element_id: str) -> str:
    """``data`` as a ``<script type="application/json">`` element that scripts read with ``JSON.parse``.

    ``<``, ``>`` and ``&`` are written as JSON escapes, so no text inside (a benchmark named ``</script>``) can end
    the element or start markup; the parsed value is unchanged.
    """
    text = json.dumps(data, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return f'<script type="application/json" id="{html.escape(element_id)}">{text}</script>'
