"""``energy-bench publish`` at scale: a history of 2,000 runs x 50 benchmarks (100,000 records), published, then
opened in headless Chromium.

Figures (in the saved JSON's ``extra_info``): ``publish_seconds`` (series, change points and every file),
``site_bytes``, ``index_open_seconds`` and ``page_open_seconds`` (from navigation until the page's plots are drawn,
measured in the browser). Floors (issue 20): publish within 60 s, each page open within 3 s.

    pytest benchmarks/test_publish_scale.py -p no:cacheprovider -s
    pytest benchmarks/test_publish_scale.py --energy-scale-runs=100 --energy-scale-benchmarks=5   # a quick check

The history comes from :func:`history_runs` (runs written with the product's record functions, parsed as saved
files are); a store filled with the same runs can take its place.
"""

from __future__ import annotations

import datetime
import random
import time

import pytest

from energy_bench.history.publish import publish, slug
from energy_bench.meters.base import Reading, Source
from energy_bench.runs.parse import SavedRun, run_from_json
from energy_bench.runs.record import energy_record, samples

PUBLISH_FLOOR_S = 60.0
OPEN_FLOOR_S = 3.0
ROUNDS = 5
MACHINES = ("ci-gpu-1", "ci-gpu-2")
START = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
STEP = datetime.timedelta(hours=1)


def history_runs(runs: int, benchmarks: int, seed: int = 20) -> list[SavedRun]:
    """``runs`` saved runs of ``benchmarks`` benchmarks each, oldest first, on two machines; every tenth benchmark
    gets a +10 % step half way (so change points exist) and every fifth an accuracy."""
    rng = random.Random(seed)
    out = []
    for i in range(runs):
        machine = MACHINES[i % len(MACHINES)]
        source = Source.MEASURED if machine == MACHINES[0] else Source.ESTIMATED
        entries = []
        for b in range(benchmarks):
            level = 1.0 + 0.1 * b
            if b % 10 == 0 and i >= runs // 2:
                level *= 1.10
            readings = [
                Reading({"gpu0": level * rng.gauss(1.0, 0.01)}, 0.02 * level, source, "nvml-counter")
                for _ in range(ROUNDS)
            ]
            extra = {"energy": energy_record(readings)}
            if b % 5 == 0:
                extra["accuracy"] = min(1.0, 0.9 + rng.gauss(0, 0.002))
            name = f"benchmarks/test_scale.py::test_bench[{b:02d}]"
            stats = samples([r.seconds for r in readings])
            entries.append({"name": name, "fullname": name, "group": None, "extra_info": extra, "stats": stats})
        data = {
            "commit_info": {"id": f"{i:040x}", "time": (START + i * STEP).isoformat(), "branch": "main"},
            "datetime": (START + i * STEP + STEP / 2).isoformat(),
            "benchmarks": entries,
        }
        run = run_from_json(data, f"{i + 1:04d}_scale")
        run.machine = machine
        out.append(run)
    return out


@pytest.fixture(scope="module")
def sizes(request):
    return request.config.getoption("--energy-scale-runs"), request.config.getoption("--energy-scale-benchmarks")


def test_publish_scale(benchmark, sizes, tmp_path) -> None:
    from energy_bench.history import browser

    runs, benchmarks = sizes
    history = history_runs(runs, benchmarks)
    site = tmp_path / "site"
    published = benchmark.pedantic(publish, args=(history, site), rounds=1, iterations=1)
    publish_seconds = benchmark.stats.stats.max
    try:
        with browser.chromium() as chromium:
            timings = {}
            first = next(iter(history[0].benchmarks))
            for key, page in (("index", site / "index.html"), ("page", site / "b" / f"{slug(first)}.html")):
                start = time.perf_counter()
                opened = browser.open_page(chromium, browser.page_url(page))
                timings[key] = opened.page.evaluate("() => performance.now()") / 1000.0
                wall = time.perf_counter() - start
                assert opened.errors == [], opened.errors
                timings[key + "_wall"] = wall
                opened.page.context.close()
    except browser.BrowserUnavailable as exc:
        pytest.skip(str(exc))
    benchmark.extra_info.update(
        {
            "records": runs * benchmarks,
            "runs": runs,
            "benchmarks": benchmarks,
            "publish_seconds": publish_seconds,
            "site_bytes": published.bytes,
            "site_files": published.files,
            "points": published.points,
            "change_points": published.changes,
            "index_open_seconds": timings["index"],
            "page_open_seconds": timings["page"],
        }
    )
    print(
        f"\npublish: {runs * benchmarks} records in {publish_seconds:.1f} s, site {published.bytes / 2**20:.1f} MiB "
        f"in {published.files} files; open in Chromium: index {timings['index']:.2f} s, a benchmark page "
        f"{timings['page']:.2f} s"
    )
    assert publish_seconds <= PUBLISH_FLOOR_S
    assert timings["index"] <= OPEN_FLOOR_S and timings["page"] <= OPEN_FLOOR_S
