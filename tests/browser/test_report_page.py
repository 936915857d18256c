"""The one-run report (``energy-bench report RUN --html DIR``) as a user sees it, on a real study run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from energy_bench.cli import main

STUDY_RUN = Path(__file__).parents[2] / "docs" / "data" / "study-1.json"
#: the benchmarks without energy records (gate quality, plain pytest-benchmark) and two models of the study
KEEP = ("test_gate_quality", "test_overhead", "[densenet121-", "[resnet18-")
NOT_MEASURED = {
    "benchmarks/test_gate_quality.py::test_gate_quality",
    "benchmarks/test_gate_quality.py::test_gate_quality_noisy_meter",
    "benchmarks/test_gate_quality.py::test_gate_quality_pooled",
    "benchmarks/test_overhead.py::test_plain_benchmark",
}
FIGURES = {
    "ratio-to-target",
    "ratio-per-call",
    "pareto-densenet121",
    "curve-densenet121",
    "pareto-densenet121-inference",
    "pareto-resnet18",
    "curve-resnet18",
    "pareto-resnet18-inference",
}


@pytest.fixture(scope="module")
def report_page(tmp_path_factory):
    pytest.importorskip("matplotlib")
    data = json.loads(STUDY_RUN.read_text())
    data["benchmarks"] = [b for b in data["benchmarks"] if any(k in b["fullname"] for k in KEEP)]
    folder = tmp_path_factory.mktemp("report")
    run = folder / "study.json"
    run.write_text(json.dumps(data))
    assert main(["report", str(run), "--html", str(folder / "out")]) == 0
    return folder / "out" / "index.html"


def test_report_shows_verdicts_first_and_lists_what_was_not_measured(report_page, open_page, capsys) -> None:
    opened = open_page(report_page, wait=False)
    page = opened.page
    assert page.locator("h2").first.inner_text() == "Verdicts"
    # the verdict table comes before any figure
    assert page.evaluate(
        "() => !!(document.querySelector('.verdicts table').compareDocumentPosition(document.querySelector('img'))"
        " & Node.DOCUMENT_POSITION_FOLLOWING)"
    )
    assert page.locator("td", has_text="failed").count() == 0
    listed = page.locator("#not-measured ~ ul").first.locator("li").all_inner_texts()
    assert set(listed) == NOT_MEASURED
    verdict_rows = page.locator(".verdicts tbody tr td:first-child").all_inner_texts()
    assert "test_gate_quality" not in verdict_rows and "densenet121" in verdict_rows
    assert opened.errors == [] and opened.remote == []


def test_report_draws_only_groups_with_joules_and_the_summary_as_a_list(report_page, open_page) -> None:
    opened = open_page(report_page, wait=False)
    page = opened.page
    images = page.locator("img")
    assert set(images.evaluate_all("els => els.map(e => e.alt)")) == FIGURES  # no empty "energy and accuracy" plot
    assert all(images.evaluate_all("els => els.map(e => e.complete && e.naturalWidth > 0)"))
    items = page.locator(".summary li").all_inner_texts()
    assert items and all(
        item.split(":")[0] in ("stego", "prune", "prune-structured", "lowrank") or ":" in item for item in items
    )
    assert page.locator(".summary p").count() >= 2  # the heads stay sentences; the per-variant lines are a list
    assert not any(text.startswith("- ") for text in page.locator(".summary p").all_inner_texts())


def test_the_verdict_table_fits_a_laptop_screen(report_page, open_page) -> None:
    # variant names have no spaces (prune-structured:amount=0.15): before they could wrap, the table ran off the page
    opened = open_page(report_page, wait=False, width=1280)
    width, visible = opened.page.evaluate("() => { const v = document.querySelector('.verdicts');"
                                          " return [v.scrollWidth, v.clientWidth]; }")  # fmt: skip
    assert width <= visible


def screenshot(*args: str) -> subprocess.CompletedProcess:
    """The screenshot command in a process of its own (the tests' browser already holds Playwright here)."""
    command = [sys.executable, "-m", "energy_bench.history.browser", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_the_screenshot_command_takes_a_report_page(report_page, tmp_path) -> None:
    out = tmp_path / "report.png"
    done = screenshot(str(report_page), str(out))  # a page without the site's script: drawn once loaded
    assert done.returncode == 0, done.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    done = screenshot(str(tmp_path / "no-such-page.html"), str(out))
    assert done.returncode == 2 and "no such page" in done.stderr and "Traceback" not in done.stderr
