"""Fuzzing the comparison with saved runs anyone could have written: the CLI and the pytest gate never crash.

Runs are built the way the harness writes them (``energy_record`` inside pytest-benchmark's JSON), then mutated:
values of the wrong type, missing keys, NaN and Infinity tokens, negative and zero values, huge round counts, deep
nesting, names with pipes and newlines, bytes that are not UTF-8, truncated text. Whatever the file, no exception
escapes, exit codes are the documented ones, and no output shows ``nan`` or ``inf`` as a number.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
import re

import hypothesis  # imported before pytester's in-process runs (see test_gate.py); event() counts exit codes
import scipy.stats  # noqa: F401
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from energy_bench.cli import main
from energy_bench.meters.base import Reading, Source
from energy_bench.runs.parse import record_from
from energy_bench.runs.record import energy_record

MACHINE = "fuzz-machine"
#: a number written as nan or inf (words, not inside another word)
NON_FINITE = re.compile(r"(?i)(?<![a-z_])(nan|inf|infinity)(?![a-z_])")
#: text for names and strings: pipes, backticks, newlines, carriage returns, backslashes; no letters n, i, f, so
#: that a name can never spell a non-finite number itself
ODD_TEXT = st.text(alphabet="abcdeghjklmopqrstuvwxyz0123456789_-:.[]|`\n\r\t\\ é", max_size=10)
#: rounds per benchmark: 520 takes the large-sample path (min p-value in log space, asymptotic test)
ROUNDS = st.sampled_from([1, 2, 3, 5, 8, 520])
#: meters of a run: mostly the same, so that most runs compare and some are refused (measured vs estimated)
METERS = st.sampled_from([("nvml-counter", Source.MEASURED)] * 5 + [("estimate", Source.ESTIMATED)])
THRESHOLDS = "joules:5%,net_joules:5%,time:10%,accuracy:1pt"
FUZZ = settings(
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)


# ---------------------------------------------------------------------------- valid runs, as the harness writes them


@st.composite
def energy_records(draw, meter):
    """``extra_info`` of one benchmark: an energy record made by ``energy_record`` and an accuracy."""
    meter, source = meter
    rounds = draw(ROUNDS)
    rng = random.Random(draw(st.integers(0, 2**32)))
    scale = draw(st.sampled_from([0.0, 1e-3, 1.0, 250.0, 1e6]))
    seconds = draw(st.sampled_from([1e-4, 0.1, 2.0]))
    readings = [
        Reading({"gpu0": scale * abs(rng.gauss(1.0, 0.05))}, seconds * abs(rng.gauss(1.0, 0.05)), source, meter)
        for _ in range(rounds)
    ]
    idle = draw(st.one_of(st.none(), st.sampled_from([0.0, 0.5, 2.0]).map(lambda f: {"gpu0": f * scale / seconds})))
    extra = {"energy": energy_record(readings, idle, iterations=draw(st.sampled_from([1, 3, 1000])))}
    accuracy = draw(st.one_of(st.none(), st.floats(0.0, 1.0)))
    if accuracy is not None:
        extra["accuracy"] = accuracy
    return extra


def bench_entry(fullname: str, extra: dict, save_data: bool) -> dict:
    seconds = extra["energy"]["seconds"]
    stats = {k: seconds[k] for k in ("min", "max", "mean", "stddev", "rounds", "median")}
    stats["ops"] = 1.0 / seconds["mean"]
    if save_data:  # --benchmark-save-data
        stats["data"] = list(seconds["data"])
    return {"name": fullname.split("::")[-1], "fullname": fullname, "stats": stats, "extra_info": extra}


@st.composite
def runs(draw, names):
    """A saved run (pytest-benchmark's JSON as a dict) of some of ``names``."""
    chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=len(names), unique=True))
    save_data = draw(st.booleans())
    gpus = draw(st.sampled_from([None, "H100", "H100", "A100"]))
    meter = draw(METERS)
    energy = {"meter": meter[0], **({"gpus": [{"index": 0, "name": gpus}]} if gpus else {})}
    return {
        "machine_info": {"node": "fuzz", "energy": energy},
        "commit_info": {"id": draw(st.sampled_from(["abc123", "def456"])), "time": "2026-11-01T00:00:00"},
        "benchmarks": [bench_entry(name, draw(energy_records(meter)), save_data) for name in chosen],
        "datetime": draw(st.sampled_from(["2026-11-01T00:00:00", "2026-11-02T00:00:00"])),
        "version": "5.3.1",
    }


# ---------------------------------------------------------------------------- mutations

#: replaced by nested brackets after dumping: deep enough to parse, and too deep for the parser
DEEP = {f"__deep_{depth}__": depth for depth in (40, 100_000)}
HOSTILE = st.one_of(
    st.sampled_from(
        [math.nan, math.inf, -math.inf, 0, 0.0, -1, -1e300, 1e308, 10**12, 10**30, True, None, "", [], {}, *DEEP]
    ),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    ODD_TEXT,
    st.lists(st.one_of(st.integers(), st.floats(), ODD_TEXT), max_size=3),
    st.dictionaries(ODD_TEXT, st.integers(), max_size=2),
)


def paths(tree, prefix=()):
    """Every path (tuple of keys) to a node below the root."""
    children = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for key, child in children:
        yield (*prefix, key)
        yield from paths(child, (*prefix, key))


def mutate_tree(draw, tree):
    """Replace or delete a few nodes anywhere in the run."""
    for _ in range(draw(st.integers(0, 3))):
        candidates = list(paths(tree))
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        parent = tree
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(HOSTILE)


def file_bytes(draw, run: dict) -> bytes:
    """The run as a file: NaN and Infinity written as tokens, as ``json.dumps`` does; sometimes broken as text."""
    mutate_tree(draw, run)
    text = json.dumps(run)
    for marker, depth in DEEP.items():
        text = text.replace(json.dumps(marker), "[" * depth + "]" * depth)
    data = text.encode("utf-8")
    damage = draw(st.sampled_from(["none"] * 7 + ["truncate", "not utf-8", "deep file"]))
    if damage == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif damage == "not utf-8":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + b"\xff\xfe" + data[at:]
    elif damage == "deep file":
        data = b"[" * 100_000 + b"]" * 100_000
    return data


# ---------------------------------------------------------------------------- what every output must satisfy


def check_text(text: str) -> None:
    assert not NON_FINITE.search(text), text
    assert "Traceback" not in text


def check_format(fmt: str, out: str) -> None:
    if fmt == "json":

        def strict(token):
            raise AssertionError(f"non-finite JSON token {token}")

        json.loads(out, parse_constant=strict)
    elif fmt == "csv" and out:
        rows = list(csv.DictReader(io.StringIO(out, newline="")))
        assert all(None not in row and None not in row.values() for row in rows)  # every row has every field
    elif fmt == "markdown":
        table = [line for line in out.splitlines() if line.startswith("|")]
        assert len({len(re.findall(r"(?<!\\)\|", line)) for line in table}) <= 1, out  # one cell stays one cell


def run_cli(capsys, argv: list[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's usage error: runs that cannot be compared
        code = exc.code
    out, err = capsys.readouterr()
    assert code in (0, 1, 2), (code, err)
    check_text(out + err)
    return code, out


# ---------------------------------------------------------------------------- the tests


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), ODD_TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(ODD_TEXT, inner, max_size=4)),
    max_leaves=20,
)


@settings(FUZZ, max_examples=300)
@given(
    extra=st.one_of(
        JSON_VALUES, st.builds(lambda e, k, v: {**e, k: v}, METERS.flatmap(energy_records), ODD_TEXT, JSON_VALUES)
    ),
    stats=JSON_VALUES,
)
def test_any_record_parses_to_finite_values_or_a_reason(extra, stats):
    record = record_from("t.py::a", extra, stats)
    for metric in ("joules", "net_joules", "time", "accuracy"):
        samples = record.samples(metric)
        if samples is not None:
            assert math.isfinite(samples.mean) and all(math.isfinite(v) for v in samples.data or ())
            assert samples.rounds is None or samples.rounds >= 1
    assert record.accuracy is None or 0.0 <= record.accuracy <= 1.0
    assert all(isinstance(reason, str) and reason for reason in record.invalid.values())


@settings(FUZZ, max_examples=60)
@given(data=st.data())
def test_cli_survives_any_saved_runs(tmp_path_factory, capsys, data):
    draw = data.draw
    names = ["t.py::a", *draw(st.lists(ODD_TEXT.map(lambda s: f"t.py::{s}"), min_size=1, max_size=2))]
    root = tmp_path_factory.mktemp("storage")
    folder = root / MACHINE
    folder.mkdir()
    for number in range(1, draw(st.integers(2, 3)) + 1):
        (folder / f"{number:04d}_run.json").write_bytes(file_bytes(draw, draw(runs(names))))
    base = ["--storage", str(root), "--machine-id", MACHINE]
    extra = [*(["--fail", THRESHOLDS] if draw(st.booleans()) else []), *(["--force"] if draw(st.booleans()) else [])]
    for fmt in ("table", "markdown", "csv", "json"):
        code, out = run_cli(capsys, ["compare", *base, "--format", fmt, *extra])
        hypothesis.event(f"compare exit {code}")
        if code != 2:
            check_format(fmt, out)
        if fmt == "json" and code != 2:
            gating = "--fail" in extra
            assert (code == 1) == (gating and bool(json.loads(out)["regressions"]))
        code, out = run_cli(capsys, ["compare", *base, "--history", "--format", fmt])
        if code != 2:
            check_format(fmt, out)
        run_cli(capsys, ["report", *base, "1", "--format", fmt])
        run_cli(capsys, ["report", *base, "1", "2", "--format", fmt])  # pooled, or refused: never a traceback
    run_cli(capsys, ["compare", *base, "1", "2", "--format", "json", *extra])


CONFTEST = """
import json, os
import pytest

def pytest_benchmark_generate_machine_info(config):
    return {"node": "fuzz"}  # py-cpuinfo takes seconds

@pytest.fixture
def current_record():
    with open(os.environ["FUZZ_CURRENT"]) as file:
        return json.load(file)
"""

TESTS = """
import pytest

@pytest.mark.parametrize("key", ["a", "b"])
def test_bench(benchmark, current_record, key):
    benchmark.pedantic(lambda: None, rounds=3, iterations=1)
    benchmark.extra_info.update(current_record[key])
"""

GATE_NAMES = ["test_fuzz_project.py::test_bench[a]", "test_fuzz_project.py::test_bench[b]"]


@settings(FUZZ, max_examples=20)
@given(data=st.data())
def test_gate_survives_any_baseline(pytester, monkeypatch, data):
    draw = data.draw
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_fuzz_project=TESTS)
    meter = draw(METERS)
    current = {key: draw(energy_records(meter)) for key in ("a", "b")}
    pytester.path.joinpath("current.json").write_text(json.dumps(current))
    monkeypatch.setenv("FUZZ_CURRENT", str(pytester.path / "current.json"))
    names = [*GATE_NAMES, *draw(st.lists(ODD_TEXT.map(lambda s: f"t.py::{s}"), max_size=1))]
    baseline = pytester.path / "baseline.json"
    baseline.write_bytes(file_bytes(draw, draw(runs(names))))
    gate = [f"--energy-compare={baseline}"]
    gate += [f"--energy-compare-fail={THRESHOLDS}"] if draw(st.booleans()) else []
    gate += ["--energy-compare-force"] if draw(st.booleans()) else []
    result = pytester.runpytest("-p", "no:cacheprovider", "-q", *gate)
    text = "\n".join(result.outlines + result.errlines)
    assert result.ret in (0, 1, 4), text
    hypothesis.event(f"gate exit {result.ret}")
    assert "INTERNALERROR" not in text
    check_text(text)
    if result.ret == 4:
        assert "ERROR: --energy-compare: " in text or "refusing to compare" in text, text
