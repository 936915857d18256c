"""``energy-bench merge``: shards joined into one run that compare, report and the gate read; what it refuses."""

from __future__ import annotations

import json

import pytest

from energy_bench.cli import main
from energy_bench.meters import Reading, Source
from energy_bench.runs.record import energy_record

BASE = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "--energy-meter=estimate")

PROJECT = """
    import pytest

    def work(n):
        return sum(i * i for i in range(n))

    @pytest.mark.parametrize("n", [100, 200])
    def test_a(energy, n):
        energy(work, n, rounds=3, warmup_rounds=0, iterations=20)
        energy.record(accuracy=0.9)

    def test_b(energy):
        energy(work, 50, rounds=3, warmup_rounds=0, iterations=20)

    def test_c(energy):
        energy(work, 10, rounds=3, warmup_rounds=0, iterations=20)
"""


def shard_run(
    names,
    *,
    shard="1/2",
    meter="estimate",
    cpu_model="Fake CPU",
    profile=None,
    commit="abc123",
    node="host-a",
    started="2026-01-01T10:00:00+00:00",
    finished="2026-01-01T10:05:00+00:00",
):
    """A shard's saved run, its records made by the product's own energy_record()."""
    source = Source.ESTIMATED if meter == "estimate" else Source.MEASURED
    record = energy_record([Reading({"cpu": 1.0 + i}, 0.5, source, meter) for i in range(3)])
    extra = {"energy": record, **({"profile": profile} if profile else {})}
    return {
        "machine_info": {
            "node": node,
            "energy": {
                "meter": meter,
                "source": source.value,
                "cpu_model": cpu_model,
                "shard": {
                    "shard": shard,
                    "keys": list(names),
                    "items": len(names),
                    "started": started,
                    "finished": finished,
                },
            },
        },
        "commit_info": {"id": commit, "dirty": False, "time": "2026-01-01T09:00:00+00:00"},
        "benchmarks": [
            {"name": n, "fullname": n, "group": None, "stats": {"mean": 0.1, "rounds": 3}, "extra_info": dict(extra)}
            for n in names
        ],
        "datetime": finished,
        "version": "5.3.1",
    }


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def refused(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_shards_merge_into_the_run_a_single_session_makes(pytester: pytest.Pytester, capsys) -> None:
    pytester.makepyfile(PROJECT)
    assert pytester.runpytest(*BASE, "--benchmark-json=single.json").ret == 0
    for k in (1, 2):
        assert pytester.runpytest(*BASE, f"--energy-shard={k}/2", f"--benchmark-json=shard{k}.json").ret == 0
    files = [str(pytester.path / f"shard{k}.json") for k in (2, 1)]
    merged_path = str(pytester.path / "merged.json")
    assert main(["merge", *files, "-o", merged_path]) == 0

    single, merged = (json.loads((pytester.path / name).read_text()) for name in ("single.json", "merged.json"))
    assert sorted(b["fullname"] for b in merged["benchmarks"]) == sorted(b["fullname"] for b in single["benchmarks"])
    assert merged["commit_info"] == json.loads((pytester.path / "shard1.json").read_text())["commit_info"]
    energy = merged["machine_info"]["energy"]
    assert energy["meter"] == "estimate" and "shard" not in energy
    assert [s["shard"] for s in energy["shards"]] == ["1/2", "2/2"]  # in shard order, whatever the file order

    capsys.readouterr()
    assert main(["report", merged_path]) == 0
    assert "test_a[100]" in capsys.readouterr().out
    assert main(["compare", str(pytester.path / "single.json"), merged_path]) == 0
    gate = pytester.runpytest(*BASE, f"--energy-compare={merged_path}")
    assert gate.ret == 0, gate.stdout.str()
    gate.stdout.fnmatch_lines(["*energy-bench: compared with merged*"])


def test_save_puts_the_merged_run_in_the_storage(tmp_path, capsys) -> None:
    files = [
        write(tmp_path, "a.json", shard_run(["t::a"], shard="1/2")),
        write(tmp_path, "b.json", shard_run(["t::b"], shard="2/2")),
    ]
    storage = tmp_path / "storage"
    args = ["--storage", str(storage), "--machine-id", "box"]
    assert main(["merge", *files, "--save", *args]) == 0
    assert main(["merge", *files, "--save", *args]) == 0
    saved = sorted(p.name for p in (storage / "box").iterdir())
    assert [name[:12] for name in saved] == ["0001_abc123_", "0002_abc123_"]
    capsys.readouterr()
    assert main(["report", "2", *args]) == 0
    assert "t::b" in capsys.readouterr().out


def test_standard_output_without_a_destination(tmp_path, capsys) -> None:
    files = [write(tmp_path, "a.json", shard_run(["t::a"]))]
    assert main(["merge", *files]) == 0
    assert [b["fullname"] for b in json.loads(capsys.readouterr().out)["benchmarks"]] == ["t::a"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"meter": "rapl"}, "mixed meters"),
        ({"cpu_model": "Other CPU"}, "different devices"),
        ({"profile": "paper"}, "mixed study profiles"),
        ({"commit": "def456"}, "mixed commits"),
        ({"shard": "2/3"}, "mixed shard counts"),
    ],
)
def test_shards_that_do_not_belong_together_are_refused_unless_forced(tmp_path, capsys, change, message) -> None:
    first = write(tmp_path, "a.json", shard_run(["t::a"], shard="1/2", profile="smoke"))
    second = write(tmp_path, "b.json", shard_run(["t::b"], **{"shard": "2/2", "profile": "smoke", **change}))
    out = str(tmp_path / "out.json")
    error = refused(capsys, "merge", first, second, "-o", out)
    assert message in error and "--force" in error
    assert not (tmp_path / "out.json").exists()

    assert main(["merge", first, second, "-o", out, "--force"]) == 0
    notes = json.loads((tmp_path / "out.json").read_text())["machine_info"]["energy"]["notes"]
    assert any(note.startswith("merged despite: ") and message in note for note in notes)


def test_a_benchmark_in_two_shards_is_always_refused(tmp_path, capsys) -> None:
    first = write(tmp_path, "a.json", shard_run(["t::a", "t::same"], shard="1/2"))
    second = write(tmp_path, "b.json", shard_run(["t::same"], shard="2/2"))
    error = refused(capsys, "merge", first, second, "--force")
    assert "t::same is in" in error and "a.json" in error and "b.json" in error


def test_the_same_shard_twice_is_refused(tmp_path, capsys) -> None:
    first = write(tmp_path, "a.json", shard_run(["t::a"], shard="1/2"))
    second = write(tmp_path, "b.json", shard_run(["t::b"], shard="1/2"))
    assert "shard 1/2 given twice" in refused(capsys, "merge", first, second)


@pytest.mark.parametrize(
    ("second_node", "second_start", "flagged"),
    [
        ("host-a", "2026-01-01T10:03:00+00:00", True),  # same node, overlapping
        ("host-a", "2026-01-01T10:06:00+00:00", False),  # same node, one after the other
        ("host-b", "2026-01-01T10:03:00+00:00", False),  # other nodes
    ],
)
def test_node_wide_shards_that_ran_together_on_one_node_are_flagged(
    tmp_path, capsys, second_node, second_start, flagged
) -> None:
    first = write(tmp_path, "a.json", shard_run(["t::a"], shard="1/2", meter="rapl"))
    second_run = shard_run(
        ["t::b"],
        shard="2/2",
        meter="rapl",
        node=second_node,
        started=second_start,
        finished="2026-01-01T10:09:00+00:00",
    )
    second = write(tmp_path, "b.json", second_run)
    out = str(tmp_path / "out.json")
    assert main(["merge", first, second, "-o", out]) == 0
    notes = json.loads((tmp_path / "out.json").read_text())["machine_info"]["energy"].get("notes", [])
    assert bool(notes) is flagged
    capsys.readouterr()
    assert main(["report", out]) == 0
    report = capsys.readouterr().out
    if flagged:
        assert "ran at the same time on node host-a (node-wide meter rapl)" in notes[0]
        assert "each one's joules include the other's work" in report


def test_a_missing_shard_is_noted(tmp_path, capsys) -> None:
    first = write(tmp_path, "a.json", shard_run(["t::a"], shard="1/3"))
    third = write(tmp_path, "c.json", shard_run(["t::c"], shard="3/3"))
    out = str(tmp_path / "out.json")
    assert main(["merge", first, third, "-o", out]) == 0
    assert "partial run: shard(s) 2/3 missing" in capsys.readouterr().err
    assert json.loads((tmp_path / "out.json").read_text())["machine_info"]["energy"]["notes"] == [
        "partial run: shard(s) 2/3 missing"
    ]


@pytest.mark.parametrize(("content", "message"), [("{", "invalid JSON"), ('{"x": 1}', "not a pytest-benchmark run")])
def test_unusable_files_are_usage_errors(tmp_path, capsys, content, message) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert message in refused(capsys, "merge", str(bad))
    assert "cannot read" in refused(capsys, "merge", str(tmp_path / "missing.json"))


def test_an_unwritable_output_is_a_usage_error(tmp_path, capsys) -> None:
    first = write(tmp_path, "a.json", shard_run(["t::a"]))
    assert "cannot write the merged run" in refused(capsys, "merge", first, "-o", str(tmp_path / "no" / "out.json"))
