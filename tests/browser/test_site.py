"""The published site as a user sees it: opened from file:// in headless Chromium, plots drawn, counted."""

from __future__ import annotations

import http.server
import threading
from functools import partial

import pytest

from energy_bench.history.changepoints import Change
from energy_bench.history.publish import PLOTLY_JS, publish, slug
from energy_bench.runs.store.files import FileStore
from tests.browser.history import CRAFTED, saved_run, write_run

LOOP = "t.py::test_loop"
PLAIN = "t.py::test_plain"
A_RUNS, B_RUNS = 8, 4

#: for each trace of a plot: (meta.kind, meta.machine, meta.source, drawn points, name)
TRACES_JS = """(id) => Array.from(document.querySelectorAll('#' + id + ' .scatterlayer .trace')).map(g => {
  const t = g.__data__[0].trace, m = t.meta || {};
  return [m.kind || null, m.machine || null, m.source || null, g.querySelectorAll('path.point').length, t.name];
})"""


def fake_changes(series):
    """A regression at linux-a's fifth run and an accepted improvement at its seventh (the feature branch)."""
    if (series.benchmark, series.metric, series.machine) != (LOOP, "joules", "linux-a"):
        return []
    p = series.points
    return [
        Change(4, p[3].commit, p[4].commit, "regression", 1.0, 1.3, 0.3, 0.25, 0.35, 1e-6),
        Change(6, p[5].commit, p[6].commit, "improvement", 1.3, 1.2, -0.08, -0.1, float("inf"), 1e-4, accepted=True),
    ]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("storage")
    for i in range(A_RUNS):
        joules = 1.0 if i < 4 else 1.3
        data = saved_run(
            {LOOP: [joules, joules * 1.01, joules * 0.99], CRAFTED: [2.0, 2.1], PLAIN: None},
            commit=f"a{i:039x}",
            time=f"2026-01-01T0{i}:00:00+00:00",
            branch="main" if i < 6 else "feature",
        )
        write_run(root, "linux-a", i + 1, data)
    for i in range(B_RUNS):
        data = saved_run(
            {LOOP: [0.8, 0.81], CRAFTED: [1.5], PLAIN: None},
            commit=f"b{i:039x}",
            time=f"2026-01-01T0{2 * i}:30:00+00:00",
            branch="main",
            source="measured",
            meter="rapl",
            carbon={"intensity_g_per_kwh": 56.0, "source": "France (FR), 2023: Our World in Data"},
        )
        write_run(root, "linux-b", i + 1, data)
    runs = FileStore(root).runs()
    out = tmp_path_factory.mktemp("site")
    published = publish(runs, out, changes=fake_changes)
    assert published.pages == 3 and published.changes == 2
    return out


def traces(opened, plot):
    return opened.page.evaluate(TRACES_JS, plot)


def points(found, kind="points", machine=None):
    return sum(n for k, m, _, n, _ in found if k == kind and (machine is None or m == machine))


def check_clean(opened):
    assert opened.errors == [] and opened.dialogs == [] and opened.remote == []
    assert opened.page.locator("img").count() == 0  # a crafted name never becomes an element


def test_index_lists_every_series_and_filters_by_machine_and_branch(site, open_page) -> None:
    opened = open_page(site / "index.html")
    rows = opened.page.locator("#benchmarks tbody tr")
    assert rows.count() == 6  # 3 benchmarks x 2 machines
    link = opened.page.get_by_role("link", name=CRAFTED, exact=True)
    assert link.count() == 2 and link.first.text_content() == CRAFTED
    loop_a = opened.page.locator("#benchmarks tbody tr", has_text="linux-a").filter(has_text="test_loop")
    assert "1 open" in loop_a.inner_text() and "regression" in loop_a.inner_text()
    opened.page.select_option("#filter-machine", "linux-b")
    assert rows.count() == 3 and "linux-a" not in opened.page.locator("#benchmarks tbody").inner_text()
    opened.page.select_option("#filter-machine", "")
    opened.page.select_option("#filter-branch", "feature")
    assert rows.count() == 3  # only linux-a ran on the feature branch
    check_clean(opened)


def test_benchmark_page_draws_each_run_and_change_and_tells_meters_apart(site, open_page) -> None:
    opened = open_page(site / "b" / f"{slug(LOOP)}.html")
    found = traces(opened, "plot-joules")
    assert points(found, machine="linux-a") == A_RUNS and points(found, machine="linux-b") == B_RUNS
    assert {(m, s) for k, m, s, n, _ in found if k == "points"} == {("linux-a", "estimated"), ("linux-b", "measured")}
    assert points(found, "changes") == 2
    assert any(k == "band" for k, *_ in found)
    legend = opened.page.locator("#plot-joules .legend").text_content()
    assert "linux-a: estimated (not measured)" in legend and "linux-b: measured" in legend
    assert points(traces(opened, "plot-time")) == A_RUNS + B_RUNS
    assert opened.page.locator("#plot-accuracy").count() == 0  # no accuracy saved: no empty plot

    opened.page.select_option("#filter-machine", "linux-b")
    opened.page.wait_for_selector("body[data-rendered=true]")
    found = traces(opened, "plot-joules")
    assert points(found) == B_RUNS and points(found, machine="linux-a") == 0 and points(found, "changes") == 0
    opened.page.select_option("#filter-machine", "")
    opened.page.select_option("#filter-branch", "feature")
    opened.page.wait_for_selector("body[data-rendered=true]")
    found = traces(opened, "plot-joules")
    assert points(found) == A_RUNS - 6 and points(found, "changes") == 1
    check_clean(opened)


def test_hover_names_commit_date_machine_and_meter(site, open_page) -> None:
    opened = open_page(site / "b" / f"{slug(LOOP)}.html")
    opened.page.select_option("#filter-machine", "linux-b")
    opened.page.wait_for_selector("body[data-rendered=true]")
    box = opened.page.locator("#plot-joules .scatterlayer .trace path.point").first.bounding_box()
    opened.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)  # as a user points at it
    opened.page.wait_for_selector("#plot-joules .hoverlayer .hovertext")
    hover = opened.page.locator("#plot-joules .hoverlayer").text_content()
    assert "commit b000000000" in hover and "2026-01-01T00:30:00+00:00" in hover
    assert "machine linux-b" in hover and "meter rapl, measured" in hover
    # grams CO2e per call with the run's own factor and its source: 0.805 J per call x 56 g/kWh / 3.6e6 J/kWh
    assert "CO2e 0.00001252 g per call at 56 gCO2e/kWh (France (FR), 2023: Our World in Data)" in hover


def test_a_crafted_name_is_shown_as_text(site, open_page) -> None:
    opened = open_page(site / "b" / f"{slug(CRAFTED)}.html")
    assert opened.page.locator("h1").inner_text() == CRAFTED
    assert opened.page.title().startswith(CRAFTED)
    assert points(traces(opened, "plot-joules")) == A_RUNS + B_RUNS
    check_clean(opened)


def test_the_site_works_from_a_local_server_too(site, open_page) -> None:
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        opened = open_page(f"http://127.0.0.1:{server.server_address[1]}/b/{slug(LOOP)}.html")
        assert points(traces(opened, "plot-joules")) == A_RUNS + B_RUNS
        check_clean(opened)
    finally:
        server.shutdown()
        server.server_close()


def test_study_page_shows_each_ratio_of_the_latest_run_and_each_model_over_commits(tmp_path, open_page) -> None:
    import json
    from pathlib import Path

    from energy_bench.runs import ranking

    root = tmp_path / "storage"
    for i, name in enumerate(("study-1.json", "study-2.json")):
        data = json.loads((Path(__file__).parents[2] / "docs" / "data" / name).read_text())
        data["commit_info"].update(id=f"{i + 1:040x}", time=f"2026-03-0{i + 1}T00:00:00+00:00")
        write_run(root, "cpu-box", i + 1, data)
    runs = FileStore(root).runs()
    publish(runs, tmp_path / "site", changes=lambda s: [])
    latest = [g for g in ranking.rank(runs[-1].benchmarks.values()) if g.metric == ranking.TO_TARGET]
    ratios = [r for g in latest for r in g.ranked if r.entry.variant != "baseline" and r.ratio is not None]

    opened = open_page(tmp_path / "site" / "study.html")
    drawn = opened.page.evaluate(  # plotly keeps an empty element where a variant has no ratio (not reached)
        "() => Array.from(document.querySelectorAll('#plot-study-latest .barlayer .point path'))"
        ".filter(p => p.getBBox().height > 0).length"
    )
    assert drawn == len(ratios) > 0
    assert opened.page.locator("#study-history .plot").count() == len(latest)
    assert "estimated energy, not measured" in opened.page.locator("#study-summary").inner_text()
    assert opened.page.locator("#study-summary li").count() == 4  # a line per compressor
    assert opened.errors == [] and opened.remote == []


#: the bounding boxes of a plot's legend, x-axis title and plot area
BOXES_JS = """(id) => ['.legend', '.xtitle', '.nsewdrag'].map(s => {
  const r = document.querySelector('#' + id + ' ' + s).getBoundingClientRect();
  return [r.left, r.top, r.right, r.bottom];
})"""


def test_legend_axis_title_and_plot_do_not_overlap(tmp_path, open_page) -> None:
    # five machines with long names, as fingerprints in a real store are: ten legend entries
    root = tmp_path / "storage"
    for m in range(5):
        for i in range(3):
            data = saved_run({LOOP: [1.0 + m, 1.1 + m]}, commit=f"{m}{i:039x}", time=f"2026-01-0{m + 1}T0{i}:00:00",
                             branch="main")  # fmt: skip
            write_run(root, f"vm-amd-epyc-family-25-model-{m}-2-cores-{'x' * 40}", i + 1, data)
    publish(FileStore(root).runs(), tmp_path / "site", changes=lambda s: [])
    opened = open_page(tmp_path / "site" / "b" / f"{slug(LOOP)}.html")
    for plot in ("plot-joules", "plot-time"):
        legend, title, area = opened.page.evaluate(BOXES_JS, plot)
        for a, b in ((legend, title), (legend, area), (title, area)):
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (plot, a, b)
        assert area[3] - area[1] >= 150  # the plot keeps its height, however long the legend
    assert opened.page.locator("h3").all_inner_texts()[:2] == ["joules per call (J)", "seconds per call (s)"]
    check_clean(opened)


def test_a_site_page_that_cannot_draw_is_reported_not_a_traceback(site, tmp_path) -> None:
    import shutil

    from tests.browser.test_report_page import screenshot

    broken = tmp_path / "site"
    shutil.copytree(site, broken)
    page = str(broken / "b" / f"{slug(LOOP)}.html")
    (broken / "assets" / PLOTLY_JS.name).write_text("throw new Error('plotly missing');\n")
    done = screenshot(page, str(tmp_path / "shot.png"), "--timeout", "2")
    assert done.returncode == 1 and "plotly missing" in done.stderr and "Traceback" not in done.stderr
    (broken / "assets" / "site.js").write_text("// never says it has drawn\n")
    done = screenshot(page, str(tmp_path / "shot.png"), "--timeout", "2")
    assert done.returncode == 1 and "the plots were not drawn within 2 s" in done.stderr
    assert "Traceback" not in done.stderr
