"""``energy-bench run --ray`` on a local Ray: two shards of a tiny project run in parallel and merge into one run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLI = "import sys; from energy_bench.cli import main; sys.exit(main())"

PROJECT = {
    "test_one.py": """
import pytest

@pytest.mark.parametrize("n", [1000, 2000])
def test_sum(energy, n):
    energy(sum, range(n), rounds=2, warmup_rounds=0, iterations=50)
    energy.record(accuracy=n / 4000)
""",
    "test_two.py": """
def test_sorted(energy):
    energy(sorted, list(range(500, 0, -1)), rounds=2, warmup_rounds=0, iterations=50)
    energy.record(accuracy=0.25)

def test_plain():
    pass
""",
}

#: stands in for an amdsmi package installed without its library (pulled in by zeus on machines without ROCm),
#: whose import raises KeyError and takes Ray's import down with it; Ray handles ImportError
NO_AMDSMI = 'raise ImportError("amdsmi without libamd_smi.so")\n'


def ray_environment(tmp_path: Path) -> dict[str, str]:
    path = [str(REPO), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path), "RAY_DEDUP_LOGS": "0"}
    probe = subprocess.run([sys.executable, "-c", "import ray"], env=env, capture_output=True, text=True)
    if probe.returncode and "amdsmi" in probe.stderr:
        (tmp_path / "no_amdsmi" / "amdsmi").mkdir(parents=True)
        (tmp_path / "no_amdsmi" / "amdsmi" / "__init__.py").write_text(NO_AMDSMI)
        env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "no_amdsmi"), *path])
        probe = subprocess.run([sys.executable, "-c", "import ray"], env=env, capture_output=True, text=True)
    if probe.returncode:
        pytest.skip(f"Ray cannot be imported: {(probe.stderr.strip().splitlines() or ['?'])[-1]}")
    return env


def test_two_shards_on_a_local_ray_make_the_run_one_session_makes(tmp_path):
    env = ray_environment(tmp_path)
    project = tmp_path / "project"
    project.mkdir()
    for name, text in PROJECT.items():
        (project / name).write_text(text)
    args = ["-q", "-p", "no:cacheprovider", "--energy-meter=estimate"]
    single = subprocess.run(
        [sys.executable, "-m", "pytest", *args, "--benchmark-json=single.json"],
        cwd=project,
        env=env,
        capture_output=True,
    )
    assert single.returncode == 0
    driver = subprocess.run(
        [sys.executable, "-c", CLI, "run", "--ray", "--shards", "2", "-o", "merged.json", "--", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert driver.returncode == 0, driver.stderr[-4000:]
    assert "shard 1/2: pytest exit 0" in driver.stderr and "shard 2/2: pytest exit 0" in driver.stderr

    def results(name):
        data = json.loads((project / name).read_text())
        return data, {b["fullname"]: b["extra_info"]["accuracy"] for b in data["benchmarks"]}

    merged, merged_results = results("merged.json")
    assert merged_results == results("single.json")[1]
    shards = merged["machine_info"]["energy"]["shards"]
    assert [s["shard"] for s in shards] == ["1/2", "2/2"]
    assert all(s["node_id"] and s["ip"] and s["gpus"] == [] and s["cuda_visible_devices"] == "" for s in shards)
    assert merged["machine_info"]["energy"]["meter"] == "estimate"
    assert "notes" not in merged["machine_info"]["energy"]  # the estimate is per process: nothing shared


#: an amdsmi installed without ROCm: its import prints a line, then raises KeyError, which Ray does not catch
BROKEN_AMDSMI = 'print("Unable to find libamd_smi.so")\nraise KeyError("libamd_smi.so")\n'


def broken_amdsmi(tmp_path: Path) -> Path:
    folder = tmp_path / "broken"
    (folder / "amdsmi").mkdir(parents=True)
    (folder / "amdsmi" / "__init__.py").write_text(BROKEN_AMDSMI)
    return folder


def test_a_broken_amdsmi_is_hidden_from_ray_here_and_in_local_workers(tmp_path, monkeypatch):
    from energy_bench.distributed.ray_driver import hide_broken_amdsmi

    monkeypatch.syspath_prepend(str(broken_amdsmi(tmp_path)))
    monkeypatch.delitem(sys.modules, "amdsmi", raising=False)
    environ = {"PYTHONPATH": "/elsewhere"}
    try:
        note = hide_broken_amdsmi(environ)
        assert note and "KeyError" in note and "hidden from Ray" in note
        with pytest.raises(ImportError):
            import amdsmi  # noqa: F401
    finally:
        sys.modules.pop("amdsmi", None)
    stub, rest = environ["PYTHONPATH"].split(os.pathsep, 1)
    assert rest == "/elsewhere"
    probe = subprocess.run([sys.executable, "-c", "import amdsmi"], env={**os.environ, "PYTHONPATH": stub},
                           capture_output=True, text=True)  # fmt: skip
    assert probe.returncode and "ImportError" in probe.stderr  # what a worker started with that path sees


def test_a_working_or_missing_amdsmi_is_left_alone(tmp_path, monkeypatch):
    from energy_bench.distributed.ray_driver import hide_broken_amdsmi

    (tmp_path / "fine" / "amdsmi").mkdir(parents=True)
    (tmp_path / "fine" / "amdsmi" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "fine"))
    monkeypatch.delitem(sys.modules, "amdsmi", raising=False)
    environ: dict[str, str] = {}
    try:
        assert hide_broken_amdsmi(environ) is None and environ == {}
    finally:
        sys.modules.pop("amdsmi", None)


def test_import_ray_survives_a_broken_amdsmi(tmp_path):
    pytest.importorskip("ray")
    path = os.pathsep.join([str(broken_amdsmi(tmp_path)), str(REPO)])
    code = "from energy_bench.distributed.ray_driver import import_ray; import_ray(); print('imported')"
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": path},
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "imported" in done.stdout and "hidden from Ray" in done.stderr
