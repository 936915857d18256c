"""MkDocs hooks: the parts of pages that must agree with the code or with measurements are generated at build time.

A line ``<!-- generated: NAME -->`` in a page is replaced by what :data:`GENERATORS` renders for NAME:

* ``options``: every pytest option of the harness and of the study, taken from the plugins themselves;
* ``results-*``: measured figures rendered from the saved runs and benchmark outputs in ``docs/data/`` (see
  docs/data/README.md for what each file is and the command that produced it). Figures are never typed by hand.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

MARKER = re.compile(r"^<!-- generated: ([a-z0-9-]+) -->$", re.M)
DATA = Path(__file__).parent / "data"


# ---------------------------------------------------------------------------- options


class _Recorder:
    """Stands in for pytest's Parser: records what a plugin's ``pytest_addoption`` registers."""

    def __init__(self) -> None:
        self.groups: dict[str, list[dict[str, Any]]] = {}
        self.inis: dict[str, str] = {}
        self._group = ""

    def getgroup(self, name: str, description: str = "") -> _Recorder:
        self._group = description or name
        self.groups.setdefault(self._group, [])
        return self

    def addoption(self, *flags: str, **kwargs: Any) -> None:
        self.groups[self._group].append({"flags": flags, **kwargs})

    def addini(self, name: str, help: str, **_kwargs: Any) -> None:
        self.inis[help] = name


def _plugin_modules() -> list[Any]:
    core = importlib.import_module("energy_bench.plugin")
    names = ["energy_bench.plugin", *core.pytest_plugins, "energy_bench.study.plugin"]
    return [importlib.import_module(name) for name in names]


def render_options() -> str:
    recorder = _Recorder()
    for module in _plugin_modules():
        if hasattr(module, "pytest_addoption"):
            module.pytest_addoption(recorder)
    blocks = []
    for group, options in recorder.groups.items():
        rows = ["| option | ini | meaning |", "| --- | --- | --- |"]
        for option in options:
            flag = option["flags"][0]
            if option.get("nargs") == "?":
                flag += "[=VALUE]"
            help_text = option.get("help", "").replace("%%", "%").replace("|", "\\|")
            ini = recorder.inis.get(option.get("help", ""))
            rows.append(f"| `{flag}` | {f'`{ini}`' if ini else ''} | {help_text} |")
        blocks.append(f"### {group}\n\n" + "\n".join(rows))
    return "\n\n".join(blocks)


# ---------------------------------------------------------------------------- measured results


def _load(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


GENERATORS: dict[str, Callable[[], str]] = {"options": render_options}


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise KeyError(f"{page.file.src_path}: no generator for '<!-- generated: {name} -->'")
        return GENERATORS[name]()

    return MARKER.sub(replace, markdown)
