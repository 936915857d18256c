"""--energy-shard=K/N: a deterministic split that keeps a key's items together; the shard hook; usage errors."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from energy_bench.plugin.shard import deal_keys, parse_shard

BASE = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "--energy-meter=estimate")

PROJECT = {
    "test_one": """
        import pytest

        @pytest.mark.parametrize("n", [1, 2, 3])
        def test_param(energy, n):
            energy(sum, range(n), rounds=1, warmup_rounds=0, iterations=1)

        def test_alone(energy):
            energy(sum, range(5), rounds=1, warmup_rounds=0, iterations=1)
    """,
    "test_two": """
        def test_x(energy):
            energy(sum, range(5), rounds=1, warmup_rounds=0, iterations=1)

        def test_y():
            pass
    """,
}


def selected(result: pytest.RunResult) -> set[str]:
    return {line.split(" ")[0] for line in result.outlines if " PASSED" in line}


def run_shard(pytester: pytest.Pytester, spec: str, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*BASE, "-v", f"--energy-shard={spec}", *args)


@pytest.mark.parametrize("text", ["0/2", "3/2", "1/0", "a/b", "2", "1/2/3", "-1/2", "/"])
def test_bad_shards_are_refused(text):
    with pytest.raises(ValueError, match="K/N|between 1 and N"):
        parse_shard(text)


def test_good_shards():
    assert (parse_shard(" 2/4 ").index, parse_shard("2/4").count, str(parse_shard("1/1"))) == (2, 4, "1/1")


@pytest.mark.parametrize("how", ["option", "ini"])
def test_bad_shard_is_a_usage_error(pytester: pytest.Pytester, how: str) -> None:
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    if how == "ini":
        pytester.makeini("[pytest]\nenergy_shard = 3/2\n")
        result = pytester.runpytest(*BASE)
    else:
        result = pytester.runpytest(*BASE, "--energy-shard=3/2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--energy-shard: '3/2': K must be between 1 and N*"])


@given(st.dictionaries(st.text(min_size=1, max_size=5), st.integers(1, 20), max_size=30), st.integers(1, 6))
def test_every_key_is_dealt_once_and_loads_stay_close(counts, shards):
    dealt = deal_keys(counts, shards)
    assert len(dealt) == shards
    assert sorted(k for keys in dealt for k in keys) == sorted(counts)
    loads = [sum(counts[k] for k in keys) for keys in dealt]
    # greedy by size: no shard exceeds another by more than the largest key
    assert max(loads) - min(loads) <= max(counts.values(), default=0)
    assert deal_keys(dict(reversed(list(counts.items()))), shards) == dealt  # insertion order does not matter


def test_shards_partition_the_session_and_keep_a_function_together(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(**PROJECT)
    everything = selected(pytester.runpytest(*BASE, "-v"))
    first = run_shard(pytester, "1/2", "--benchmark-json=one.json")
    second = run_shard(pytester, "2/2", "--benchmark-json=two.json")
    assert first.ret == second.ret == 0
    assert selected(first) | selected(second) == everything and not selected(first) & selected(second)
    params = {name for name in everything if "test_param" in name}
    assert params <= selected(first) or params <= selected(second)
    # 6 items under 4 keys: test_param (3 items) alone in one shard, the three single-item keys in the other
    assert {len(selected(first)), len(selected(second))} == {3}
    first.stdout.fnmatch_lines(["*3 passed, 3 deselected*"])

    shards = [
        json.loads((pytester.path / f"{name}.json").read_text())["machine_info"]["energy"] for name in ("one", "two")
    ]
    assert [s["shard"]["shard"] for s in shards] == ["1/2", "2/2"]
    keys = [set(s["shard"]["keys"]) for s in shards]
    assert keys[0] | keys[1] == {
        "test_one.py::test_param",
        "test_one.py::test_alone",
        "test_two.py::test_x",
        "test_two.py::test_y",
    }
    assert all(s["shard"]["started"] <= s["shard"]["finished"] for s in shards)
    assert shards[0]["meter"] == "estimate"  # the meter's description stays beside the shard's


def test_a_plugin_chooses_the_shard_key(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(**PROJECT)
    pytester.makeconftest("""
        def pytest_energy_shard_key(item):
            return "all together" if "test_one" in item.nodeid else None
    """)
    first, second = (selected(run_shard(pytester, spec)) for spec in ("1/2", "2/2"))
    together = {name for name in first | second if "test_one" in name}
    assert len(together) == 4 and (together <= first or together <= second)


def test_the_study_keys_shards_by_model(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        "def test_train(study_model, study_compressor):\n    pass\n\n"
        "def test_inference(study_model, study_compressor):\n    pass\n"
    )
    args = ("-p", "energy_bench.study", "--energy-models=resnet18,alexnet", "--energy-compressors=baseline,prune")
    first, second = (selected(run_shard(pytester, spec, *args)) for spec in ("1/2", "2/2"))
    models = [{name.split("[")[1].split("-")[0] for name in shard} for shard in (first, second)]
    assert sorted(map(sorted, models)) == [["alexnet"], ["resnet18"]]
    assert len(first) == len(second) == 4


def test_the_split_does_not_depend_on_hash_randomization(pytester, monkeypatch) -> None:
    pytester.makepyfile(**PROJECT)
    picked = []
    for seed in ("1", "2"):
        monkeypatch.setenv("PYTHONHASHSEED", seed)
        picked.append(selected(pytester.runpytest_subprocess(*BASE, "-v", "--energy-shard=1/3")))
    assert picked[0] == picked[1] and picked[0]


def test_more_shards_than_keys_leaves_some_empty(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_only="def test_a():\n    pass\n")
    counts = Counter(r.ret for r in (run_shard(pytester, f"{k}/3") for k in (1, 2, 3)))
    assert counts == {pytest.ExitCode.OK: 1, pytest.ExitCode.NO_TESTS_COLLECTED: 2}
