"""The history store on both engines: what goes in comes back, nothing twice, nothing partial, nothing executed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from energy_bench.cli import main
from energy_bench.meters.base import Reading, Source
from energy_bench.runs import record as records
from energy_bench.runs.store import StoreError, open_store
from energy_bench.runs.store import schema as store_schema
from energy_bench.runs.store.files import RunNotFound
from tests.store import postgres

CRAFTED = "t.py::test_x[a'); DROP TABLE eb_runs; --<script>alert(1)</script>]"


def entry(fullname: str, joules: float, rounds: int = 4, accuracy: float = 0.9) -> dict:
    """One benchmark as pytest-benchmark saves it, with the record the harness builds."""
    values = [joules * (1 + 0.01 * (i - (rounds - 1) / 2)) for i in range(rounds)]  # mean: joules
    readings = [Reading({"cpu": v}, v / 10, Source.ESTIMATED, "estimate") for v in values]
    return {
        "name": fullname.split("::")[-1],
        "fullname": fullname,
        "params": None,
        "stats": {"mean": joules / 10, "rounds": rounds},
        "extra_info": {"energy": records.energy_record(readings), "accuracy": accuracy},
    }


def run_data(number: int, benches: list[dict], *, branch: str = "main", node: str = "host-a") -> dict:
    when = f"2026-11-{1 + number // 24:02d}T{number % 24:02d}:00:00+00:00"
    return {
        "machine_info": {"node": node, "system": "Linux", "machine": "x86_64", "cpu": {"brand_raw": "AMD EPYC"}},
        "commit_info": {"id": f"{number:040x}", "time": when, "branch": branch, "dirty": False, "project": "p"},
        "benchmarks": benches,
        "datetime": when,
        "version": "5.2.3",
    }


def test_runs_come_back_as_saved_and_twice_adds_nothing(store_url, tmp_path):
    store = open_store(store_url)
    texts = {}
    for number in range(1, 6):
        data = run_data(number, [entry("t.py::a", 10.0 + number), entry("t.py::b", 1.0)])
        text = json.dumps(data, indent=4)
        path = tmp_path / "in" / "Linux-CPython-3.11-64bit" / f"{number:04d}_run.json"
        texts[path.name] = text
        assert store.add(data, origin=str(path), text=text)
        assert not store.add(json.loads(text), origin=str(path), text=text)  # the same content: kept once
    (machine,) = store.machines()
    assert machine.runs == 5 and "host-a" in machine.name
    last = store.last(3, machine=machine.fingerprint, branch="main")
    assert [r.label for r in last] == ["0003_run", "0004_run", "0005_run"]
    assert last[-1].benchmarks["t.py::a"].joules.mean == pytest.approx(15.0)
    assert [r.label for r in store.last(2, before="0004_run")] == ["0002_run", "0003_run"]
    assert store.last(5, branch="other") == []
    series = store.runs(benchmark="t.py::a")
    assert [list(r.benchmarks) for r in series] == [["t.py::a"]] * 5
    assert store.find(f"{3:040x}").label == "0003_run" and store.find("0002_run").label == "0002_run"
    with pytest.raises(RunNotFound):
        store.find("no-such-run")
    written = store.export(tmp_path / "out")
    assert sorted(p.name for p in written) == sorted(texts)
    assert all(p.read_text() == texts[p.name] for p in written)  # byte for byte
    store.close()


def test_a_crafted_name_is_stored_and_read_as_text(store_url):
    store = open_store(store_url)
    assert store.add(run_data(1, [entry(CRAFTED, 2.0)]))
    (run,) = store.runs(benchmark=CRAFTED)
    assert list(run.benchmarks) == [CRAFTED]
    assert store.add(run_data(2, [entry("t.py::plain", 1.0)]))  # the tables are still there
    assert len(store.runs()) == 2
    store.close()


WRITER = textwrap.dedent(
    """
    import json, sys
    from energy_bench.runs.store import open_store
    url, writer, count, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    sys.path.insert(0, path)
    from test_store import entry, run_data
    store = open_store(url)
    for i in range(count):
        benches = [entry(f"t.py::b{k}", 1.0 + writer + i) for k in range(3)]
        store.add(run_data(writer * 1000 + i, benches, node=f"host-{writer}"))
    store.close()
    """
)


def _writer(url: str, writer: int, count: int) -> subprocess.Popen:
    here = os.path.dirname(__file__)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-c", WRITER, url, str(writer), str(count), here], env=env)


def _partial_runs(store) -> int:
    return sum(len(run.benchmarks) != 3 for run in store.runs())


def test_eight_concurrent_writers_lose_nothing(store_url):
    open_store(store_url).close()  # the schema first, as the first session would
    writers = [_writer(store_url, w, 50) for w in range(8)]
    assert [w.wait(timeout=600) for w in writers] == [0] * 8
    store = open_store(store_url)
    assert store.count() == 400 and len(store.machines()) == 8 and _partial_runs(store) == 0
    store.close()


def test_a_writer_killed_mid_write_leaves_whole_runs(store_url):
    open_store(store_url).close()
    writer = _writer(store_url, 1, 100_000)
    store = open_store(store_url)
    deadline = time.monotonic() + 120
    while store.count() < 5 and time.monotonic() < deadline and writer.poll() is None:
        time.sleep(0.05)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert store.count() >= 5 and _partial_runs(store) == 0
    assert store.add(run_data(99, [entry("t.py::b0", 1.0)] * 1))  # still writable after the kill
    store.close()


def test_a_newer_schema_is_refused_in_one_line(store_url):
    store = open_store(store_url)
    with store.engine.begin() as conn:
        conn.execute(store_schema.schema_version.update().values(version=store_schema.SCHEMA_VERSION + 1))
    store.close()
    with pytest.raises(StoreError, match="newer than this energy-bench reads"):
        open_store(store_url)


def test_a_wrong_password_is_one_line_without_the_password(postgres_server, capsys):
    wrong = postgres_server.url(password="not-the-" + postgres.PASSWORD)
    with pytest.raises(SystemExit) as exit_info:
        main(["history", "show", "--history", wrong])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "password authentication failed" in err and "***" in err
    assert postgres.PASSWORD not in err and "not-the-" not in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "url, message",
    [
        ("mysql://u:pw@h/db", "unsupported database 'mysql'"),
        ("postgresql://u:pw@h:notaport/db", "not a database URL"),
    ],
)
def test_a_bad_url_is_one_line(url, message, tmp_path):
    with pytest.raises(StoreError, match=message) as info:
        open_store(url)
    assert "pw" not in str(info.value).replace("***", "")


def test_import_is_idempotent_and_names_what_it_skips(store_url, tmp_path, capsys):
    folder = tmp_path / ".benchmarks" / "Linux-CPython-3.11-64bit"
    folder.mkdir(parents=True)
    for number in range(1, 4):
        (folder / f"{number:04d}_run.json").write_text(json.dumps(run_data(number, [entry("t.py::a", 1.0)])))
    (folder / "0004_broken.json").write_text("{not json")
    assert main(["history", "import", str(tmp_path / ".benchmarks"), "--history", store_url]) == 0
    out, err = capsys.readouterr()
    assert "3 run(s) added, 0 already there, 1 file(s) skipped" in out and "0004_broken.json" in err
    assert main(["history", "import", str(folder), "--history", store_url]) == 0
    assert "0 run(s) added, 3 already there" in capsys.readouterr().out
    assert postgres.PASSWORD not in out
