"""The sessions ``energy-bench report`` reads: each RUN (latest, NUM, file, commit prefix) or ``last:N``, checked
and (``--estimate-model``) recomputed. Usage errors (exit 2) for what names nothing or cannot be pooled."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from energy_bench.cli.compare import open_storage, skipped
from energy_bench.meters.estimate import model_from_spec
from energy_bench.runs.estimate_model import EstimateModelError, rescale_run
from energy_bench.runs.parse import RunLoadError, SavedRun, load_run_file, read_json, run_from_json
from energy_bench.runs.sessions import pool_problems
from energy_bench.runs.store.files import RunNotFound, RunSpecError, Storage, parse_last
from energy_bench.runs.text import printable

Session = tuple[SavedRun, dict[str, Any]]


def _paths(parser: argparse.ArgumentParser, storage: Storage, spec: str) -> tuple[list[Path], list[str]]:
    """The run files ``spec`` names, oldest first, and a note when ``last:N`` found fewer than N."""
    try:
        count = parse_last(spec)
    except RunSpecError as exc:
        parser.error(printable(str(exc)))
    if count is None:
        try:
            return [storage.find(spec)], []
        except RunNotFound as exc:
            parser.error(printable(str(exc)))
    runs = storage.load_last(count, skipped)  # skips unreadable files, so N readable ones are pooled when they exist
    if not runs:
        parser.error(f"{spec}: no readable saved run in {printable(str(storage.folder))}")
    notes = [f"{spec}: only {len(runs)} readable saved run(s); pooled those"] if len(runs) < count else []
    return [run.path for run in runs if run.path is not None], notes


def _read(parser: argparse.ArgumentParser, path: Path, estimate_model: str | None) -> Session:
    """One session as :class:`SavedRun` (its table) and parsed JSON (its ranking), the same checked reading."""
    try:
        run, data = load_run_file(path), read_json(path)
    except RunLoadError as exc:
        parser.error(printable(str(exc)))
    if estimate_model is None:
        return run, data
    try:
        data = rescale_run(data, model_from_spec(estimate_model))
    except (ValueError, EstimateModelError) as exc:
        parser.error(f"--estimate-model: {printable(str(exc))}")
    return run_from_json(data, run.label, run.path), data


def load_sessions(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[list[Session], list[str]]:
    """Every session the RUNs name, in the order given, and notes; refused when one is named twice (it would count
    twice as evidence) or when they come from other machines, meters or estimate models."""
    storage = open_storage(args)
    paths: list[Path] = []
    notes: list[str] = []
    for spec in args.run or ["latest"]:
        found, said = _paths(parser, storage, spec)
        paths += found
        notes += said
    if getattr(args, "save_json", None) is not None and len(paths) > 1:
        parser.error("--save-json writes one recomputed run: name one RUN with it")
    seen: set[Path] = set()
    for path in paths:
        if path.resolve() in seen:
            parser.error(f"{printable(str(path))} is named twice: each session counts once")
        seen.add(path.resolve())
    sessions = [_read(parser, path, args.estimate_model) for path in paths]
    problems = pool_problems(sessions) if len(sessions) > 1 else []
    if problems:
        parser.error(f"refusing to pool these sessions: {'; '.join(problems)}")
    return sessions, notes
