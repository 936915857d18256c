"""The documentation's generated parts: every marker has a generator, every generator renders from the data that
ships in docs/data/, and the README's links point at files that exist. (``mkdocs build --strict`` checks the rest
in the docs workflow; this runs with the tests, without mkdocs.)"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def test_every_marker_has_a_generator_and_every_generator_is_used(hooks):
    used = {name for page in pages() for name in hooks.MARKER.findall(page.read_text(encoding="utf-8"))}
    assert used - set(hooks.GENERATORS) == set()
    assert set(hooks.GENERATORS) - used == set()


@pytest.mark.parametrize("name", ["options", "study-models", "results-machine", "results-times", "results-study",
                                  "results-summary", "results-inference", "results-overhead", "results-field",
                                  "results-omp", "gate-thresholds"])  # fmt: skip
def test_generator_renders(hooks, name):
    text = hooks.GENERATORS[name]()
    assert text.strip()
    assert "nan" not in text.lower().split() and "None" not in text


def test_study_table_has_a_row_per_compressed_training_benchmark(hooks):
    run = json.loads((DOCS / "data" / hooks.STUDY_RUNS[0]).read_text(encoding="utf-8"))
    trained = [b for b in run["benchmarks"] if "::test_train[" in b["fullname"]]
    compressed = [b for b in trained if b["extra_info"].get("compressor") != "baseline"]
    rows = [line for line in hooks.render_study_ranking().splitlines() if line.startswith("| ")][1:]  # no header
    assert compressed and len(rows) == len(compressed)
    models = {b["extra_info"]["model"] for b in trained}
    assert {row.split("|")[1].strip() for row in rows} == models


def test_options_table_lists_core_and_study_options(hooks):
    text = hooks.render_options()
    for flag in ("--energy-meter", "--energy-compare", "--energy-compare-fail", "--energy-models", "--energy-rounds"):
        assert f"`{flag}" in text


def test_committed_generated_blocks_are_what_the_generators_render(hooks):
    # The rendered text is committed so that pages read the same on GitHub; a change to an option or to docs/data
    # must come with `python docs/hooks.py`.
    stale = [
        str(page.relative_to(DOCS))
        for page in pages()
        if hooks.render_page(text := page.read_text(encoding="utf-8"), str(page)) != text
    ]
    assert stale == [], "run `python docs/hooks.py` to rewrite the generated blocks of these pages"


def test_a_block_is_rewritten_between_its_markers(hooks, monkeypatch):
    monkeypatch.setitem(hooks.GENERATORS, "demo", lambda: "| a |\n| - |\n")
    page = "before\n<!-- generated: demo -->\nold\ntext\n<!-- end generated: demo -->\nafter\n"
    expected = "before\n<!-- generated: demo -->\n| a |\n| - |\n<!-- end generated: demo -->\nafter\n"
    assert hooks.render_page(page, "p.md") == expected
    bare = "<!-- generated: demo -->\n"  # a marker without its block yet
    assert hooks.render_page(bare, "p.md") == "<!-- generated: demo -->\n| a |\n| - |\n<!-- end generated: demo -->\n"


def test_unknown_marker_is_an_error(hooks):
    page = SimpleNamespace(file=SimpleNamespace(src_path="x.md"))  # the shape of mkdocs' Page
    with pytest.raises(KeyError, match="no generator"):
        hooks.on_page_markdown("<!-- generated: no-such-thing -->\n", page, None, None)


LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("document", [ROOT / "README.md", *pages()], ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_at_files(document):
    missing = [
        target
        for target in LINK.findall(document.read_text(encoding="utf-8"))
        if "://" not in target and not target.startswith("mailto:") and not (document.parent / target).exists()
    ]
    assert missing == []
