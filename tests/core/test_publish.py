"""energy-bench publish: the site's files and data (what a browser draws is checked in tests/browser)."""

from __future__ import annotations

import json

import pytest

from energy_bench.cli import main
from energy_bench.history import changepoints
from energy_bench.history import publish as site
from energy_bench.history.changepoints import Change
from energy_bench.runs.look import script_json
from energy_bench.runs.store.files import FileStore
from tests.browser.history import CRAFTED, saved_run, write_run


@pytest.fixture
def storage(tmp_path):
    root = tmp_path / "storage"
    for i in range(4):
        data = saved_run(
            {"t.py::test_a": [1.0 + i, 1.1 + i], CRAFTED: [2.0]},
            commit=f"{i:040x}",
            time=f"2026-02-0{4 - i}T00:00:00+00:00",  # saved in the reverse of commit order
            branch="main",
        )
        write_run(root, "m1", i + 1, data)
    return root


def runs_of(root):
    return FileStore(root).runs()


def test_runs_are_read_from_every_machine_in_commit_order(storage) -> None:
    write_run(
        storage, "m2", 1, saved_run({"t.py::test_a": [5.0]}, commit="f" * 40, time="2026-02-02T12:00:00", branch="x")
    )
    runs = runs_of(storage)
    assert [r.commit_time[:13] for r in runs] == [
        "2026-02-01T00",
        "2026-02-02T00",
        "2026-02-02T12",
        "2026-02-03T00",
        "2026-02-04T00",
    ]
    assert {r.machine for r in runs} == {"m1", "m2"}


def test_script_json_cannot_end_its_element() -> None:
    data = {"name": "</script><script>alert(1)</script> & <!--", "line": "a\u2028b"}
    element = script_json(data, "x")
    inner = element[element.index(">") + 1 : -len("</script>")]
    assert "<" not in inner and ">" not in inner and "&" not in inner
    assert json.loads(inner) == data


def test_site_files_data_and_escaping(storage, tmp_path) -> None:
    out = tmp_path / "site"
    published = site.publish(runs_of(storage), out, changes=lambda series: [])
    assert published.pages == 2 and published.points == 2 * 4 * 2  # 2 benchmarks x 4 runs x (joules, time)
    plotly = out / "assets" / "plotly-basic.min.js"
    assert plotly.read_bytes() == site.plotly_js().read_bytes()
    assert (out / "assets" / "LICENSE-plotly.js.txt").read_text().startswith("plotly.js basic bundle")
    assert len(list(out.rglob("plotly*.js"))) == 1
    # the index draws no plotly plot, so it does not pay for parsing plotly.js; the other pages load it once
    assert "plotly" not in (out / "index.html").read_text()
    assert (out / "study.html").read_text().count('src="assets/plotly-basic.min.js"') == 1
    for page in [out / "index.html", out / "study.html", *(out / "b").glob("*.html")]:
        text = page.read_text()
        assert "<img" not in text  # the crafted name is escaped in markup and in the page's JSON
        assert "http://" not in text and "https://" not in text  # nothing loaded from the network
    page = (out / "b" / f"{site.slug(CRAFTED)}.html").read_text()
    assert "<h1 id=title>t.py::test_x[&lt;img src=x onerror=alert(1)&gt;]</h1>" in page
    data = json.loads((out / "data" / "b" / f"{site.slug(CRAFTED)}.json").read_text())
    assert data["benchmark"] == CRAFTED
    joules = next(m for m in data["metrics"] if m["metric"] == "joules")
    assert joules["series"][0]["value"] == [2.0] * 4 and data["meters"] == [
        {"source": "estimated", "meter": "estimate"}
    ]
    index = json.loads((out / "data" / "index.json").read_text())
    assert {row["benchmark"] for row in index["rows"]} == {"t.py::test_a", CRAFTED}
    row = next(row for row in index["rows"] if row["benchmark"] == "t.py::test_a")
    assert row["all"]["latest"] == pytest.approx(1.05)  # the latest commit's run is the first one saved


def test_changes_come_from_the_detector_and_unbounded_intervals_stay_valid_json(storage, tmp_path, monkeypatch) -> None:
    def detect(series):
        p = series.points
        return [Change(2, p[1].commit, p[2].commit, "improvement", 2.0, 1.0, -0.5, float("-inf"), -0.4, 1e-5)]

    monkeypatch.setattr(changepoints, "detect", detect, raising=False)
    out = tmp_path / "site"
    published = site.publish(runs_of(storage), out)
    assert published.changes == 2 * 2  # every series of the two benchmarks with joules and time
    data = json.loads((out / "data" / "b" / f"{site.slug('t.py::test_a')}.json").read_text())
    (change,) = next(m for m in data["metrics"] if m["metric"] == "joules")["changes"]
    assert change["low"] is None and change["high"] == -0.4 and change["direction"] == "improvement"
    index = json.loads((out / "data" / "index.json").read_text())
    assert all(len(row["open"]) == 2 for row in index["rows"])


def test_republishing_removes_pages_of_benchmarks_gone(storage, tmp_path) -> None:
    out = tmp_path / "site"
    runs = runs_of(storage)
    site.publish(runs, out, changes=lambda s: [])
    for run in runs:
        del run.benchmarks[CRAFTED]
    site.publish(runs, out, changes=lambda s: [])
    assert [p.name for p in (out / "b").iterdir()] == [f"{site.slug('t.py::test_a')}.html"]
    assert len(list((out / "data" / "b").iterdir())) == 1
    (out / "assets" / "plotly.min.js").write_text("// an older energy-bench's full bundle")
    (out / "notes.txt").write_text("mine")
    site.publish(runs, out, changes=lambda s: [])
    assert not (out / "assets" / "plotly.min.js").exists() and (out / "notes.txt").exists()


def test_the_vendored_plotly_is_the_release_its_license_names() -> None:
    import hashlib

    notice = site.PLOTLY_LICENSE.read_text()
    digest = hashlib.sha256(site.plotly_js().read_bytes()).hexdigest()
    assert f"sha256 {digest}" in notice and "MIT License" in notice
    version = notice.split("version ")[1].split(":")[0]
    assert site.plotly_js().read_text()[:200].count(f"plotly.js (basic - minified) v{version}") == 1


def test_cli_publishes_the_store_and_an_empty_store_is_a_usage_error(storage, tmp_path, capsys) -> None:
    assert main(["history", "import", str(storage), "-s", str(storage)]) == 0
    assert main(["publish", str(tmp_path / "site"), "-s", str(storage)]) == 0
    assert "2 benchmark pages" in capsys.readouterr().out
    (tmp_path / "nothing").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        main(["publish", str(tmp_path / "other"), "-s", str(tmp_path / "nothing")])
    assert exit_info.value.code == 2
    assert "no runs in the history store" in capsys.readouterr().err


def test_slugs_are_safe_file_names_and_unique() -> None:
    names = ["a/b", "a_b", "a?b", "../../etc", "x" * 300, "<img>", ""]
    slugs = [site.slug(n) for n in names]
    assert len(set(slugs)) == len(names)
    assert all(
        s and len(s) <= 71 and all(c.isalnum() or c in "_.-" for c in s) and not s.startswith(".") for s in slugs
    )


def test_a_metric_one_machine_lacks_is_no_error(storage, tmp_path) -> None:
    # m2's runs have an accuracy that m1's lack: the index asks each machine's series for every metric of the name
    for i in range(2):
        data = saved_run({"t.py::test_a": [3.0]}, commit=f"e{i:039x}", time=f"2026-03-0{i + 1}T00:00:00", branch="m")
        data["benchmarks"][0]["extra_info"]["accuracy"] = 0.9
        write_run(storage, "m2", i + 1, data)
    published = site.publish(runs_of(storage), tmp_path / "out", changes=lambda s: [])
    assert published.pages == 2
