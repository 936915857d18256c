"""pytest-benchmark's file storage: ``<root>/<machine_id>/NNNN_<name>.json``, found by number, path or commit."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pytest_benchmark.utils import get_machine_id

from energy_bench.errors import EnergyBenchError
from energy_bench.runs.parse import RUN_NUMBER, RunLoadError, SavedRun, load_run_file, read_json

DEFAULT_STORAGE = "./.benchmarks"
RUN_GLOB = "[0-9][0-9][0-9][0-9]_*.json"
#: ``last:N``: the N newest saved runs of this machine, pooled as one baseline
_LAST = re.compile(r"^last:(?P<count>[0-9]{1,6})$")


class RunNotFound(EnergyBenchError, LookupError):
    """A run asked for by number, path or commit that does not exist; the message says what was looked for."""


class RunSpecError(EnergyBenchError, ValueError):
    """A malformed run spec (e.g. ``last:0``); the message is one line fit for a usage error."""


def storage_path(storage: str | None) -> Path:
    """The folder behind a ``--benchmark-storage`` value: ``file://PATH`` or a plain path."""
    storage = storage or DEFAULT_STORAGE
    if "://" in storage:
        scheme, _, rest = storage.partition("://")
        if scheme != "file":
            raise ValueError(f"storage {storage!r}: only file:// storage is supported by energy-bench")
        storage = rest
    return Path(storage)


@dataclass(frozen=True)
class Storage:
    """Saved runs under ``<root>/<machine_id>/NNNN_<name>.json`` (pytest-benchmark's file storage)."""

    root: Path
    machine_id: str = field(default_factory=get_machine_id)

    @classmethod
    def from_uri(cls, storage: str | None, machine_id: str | None = None) -> Storage:
        return cls(storage_path(storage), machine_id or get_machine_id())

    @property
    def folder(self) -> Path:
        return self.root / self.machine_id

    def run_files(self) -> list[Path]:
        """This machine's run files, oldest (lowest number) first."""
        if not self.folder.is_dir():
            return []
        return sorted(self.folder.glob(RUN_GLOB), key=lambda p: (int(p.name[:4]), p.name))

    def all_run_files(self) -> list[Path]:
        """Run files of every machine folder, for looking up commits and paths."""
        if not self.root.is_dir():
            return []
        return sorted(self.root.glob(f"*/{RUN_GLOB}"))

    def find(self, spec: str) -> Path:
        """The run file for ``spec``: ``latest``, a run number, a JSON path, or (last) a commit prefix."""
        files = self.run_files()
        if spec == "latest":
            if not files:
                raise RunNotFound(f"no saved run in {self.folder} (save one with --benchmark-autosave)")
            return files[-1]
        if spec.isdigit():
            number = int(spec)
            for path in files:
                if int(path.name[:4]) == number:
                    return path
            raise RunNotFound(f"no run number {number:04d} in {self.folder}")
        candidate = Path(spec)
        if candidate.is_file():
            return candidate
        if spec.endswith(".json") or "/" in spec or "\\" in spec:
            raise RunNotFound(f"no such file: {spec}")
        return self._find_commit(spec)

    def _find_commit(self, prefix: str) -> Path:
        """The newest run of this machine whose file name, or commit id, starts with ``prefix``."""
        for path in reversed(self.run_files()):
            if path.name.startswith(prefix) or path.name[5:].startswith(prefix):  # 0003_abc or abc
                return path
            try:
                data = read_json(path)
            except RunLoadError:
                continue
            commit_info = data.get("commit_info") if isinstance(data, Mapping) else None
            commit = commit_info.get("id") if isinstance(commit_info, Mapping) else None
            if isinstance(commit, str) and commit.startswith(prefix):
                return path
        raise RunNotFound(f"no run, file or commit matching {prefix!r} in {self.folder}")

    def load_last(self, count: int, on_error: Callable[[str], None], before: Path | None = None) -> list[SavedRun]:
        """The ``count`` newest readable runs of this machine, oldest first (fewer when fewer exist).

        ``before``: a run file that is not part of the pool; when it is one of this machine's numbered runs, only runs
        with a lower number count (the runs saved before it). Unreadable files are reported through ``on_error`` and
        skipped, so the pool still holds ``count`` runs when enough readable ones exist.
        """
        files = self.run_files()
        if before is not None:
            resolved = before.resolve()
            if resolved.parent == self.folder.resolve() and RUN_NUMBER.match(before.name):
                files = [f for f in files if int(f.name[:4]) < int(before.name[:4])]
            else:
                files = [f for f in files if f.resolve() != resolved]
        runs: list[SavedRun] = []
        for path in reversed(files):
            if len(runs) == count:
                break
            try:
                runs.append(load_run_file(path))
            except RunLoadError as exc:
                on_error(str(exc))
        return runs[::-1]


def parse_last(spec: str) -> int | None:
    """N of a ``last:N`` run spec, None for any other spec; :class:`RunSpecError` for ``last:0`` or ``last:x``."""
    if not spec.startswith("last:"):
        return None
    match = _LAST.match(spec)
    if not match or int(match["count"]) < 1:
        raise RunSpecError(f"{spec!r}: expected last:N with a whole number N >= 1, e.g. last:5")
    return int(match["count"])


class FileStore:
    """pytest-benchmark's file storage answering :class:`~energy_bench.runs.store.RunStore`: a machine is its
    storage folder (pytest-benchmark's machine id), a run one numbered file."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.display_url = f"file://{self.root}"

    def _runs(self, machine: str | None, branch: str | None, runner: str | None) -> list[SavedRun]:
        """Readable runs matching the filters, oldest first (unreadable files are left out)."""
        from energy_bench.runs.parse import run_from_json, run_label
        from energy_bench.runs.store.keys import energy_bench_facts

        folders = [self.root / machine] if machine else sorted(p for p in self.root.glob("*") if p.is_dir())
        found = []
        for folder in folders:
            for path in Storage(self.root, folder.name).run_files():
                try:
                    data = read_json(path)
                    run = run_from_json(data, run_label(path), path)
                except RunLoadError:
                    continue
                if branch is not None and run.branch != branch:
                    continue
                if runner is not None and energy_bench_facts(data.get("machine_info")).get("runner_label") != runner:
                    continue
                found.append(run)
        return sorted(found, key=lambda run: run.order_key)

    def last(self, count, *, machine=None, branch=None, before=None, runner=None) -> list[SavedRun]:
        runs = self._runs(machine, branch, runner)
        labels = [run.label for run in runs]
        if before is not None and before in labels:
            runs = runs[: labels.index(before)]
        return runs[-count:]

    def runs(self, *, machine=None, branch=None, benchmark=None, runner=None) -> list[SavedRun]:
        runs = self._runs(machine, branch, runner)
        if benchmark is None:
            return runs
        for run in runs:
            run.benchmarks = {benchmark: run.benchmarks[benchmark]} if benchmark in run.benchmarks else {}
        return [run for run in runs if run.benchmarks]

    def find(self, spec, *, machine=None, branch=None, runner=None) -> SavedRun:
        runs = self._runs(machine, branch, runner)
        for run in reversed(runs):
            if spec == "latest" or run.label == spec or (run.commit_id or "").startswith(spec):
                return run
        raise RunNotFound(f"no run {spec!r} in {self.display_url}")

    def machines(self):
        from energy_bench.runs.store import Machine

        folders = sorted(p for p in self.root.glob("*") if p.is_dir()) if self.root.is_dir() else []
        counts = [(folder.name, len(Storage(self.root, folder.name).run_files())) for folder in folders]
        return [Machine(name, name, count) for name, count in counts if count]

    def add(self, data: Mapping, *, origin: str | None = None, text: str | None = None) -> bool:
        """Save ``data`` as the next numbered run of its machine's folder; False when a file there has its content."""
        from pytest_benchmark.utils import get_current_time

        from energy_bench.runs.parse import run_from_json
        from energy_bench.runs.store.keys import content_hash
        from energy_bench.runs.store.rows import format_run_json, storage_machine_id

        run_from_json(data, origin or "run")  # RunLoadError when it is not a run
        origin_path = Path(origin) if origin else None
        if origin_path is not None and RUN_NUMBER.match(origin_path.name):
            machine = origin_path.parent.name
        else:
            machine = storage_machine_id(data.get("machine_info") or {})
        storage = Storage(self.root, machine)
        digest = content_hash(data)
        for path in storage.run_files():
            try:
                if content_hash(read_json(path)) == digest:
                    return False
            except RunLoadError:
                continue
        commit = data.get("commit_info") if isinstance(data.get("commit_info"), Mapping) else {}
        tag = f"{commit.get('id') or 'unversioned'}_{get_current_time()}" + (
            "_uncommitted-changes" * bool(commit.get("dirty"))
        )
        files = storage.run_files()
        number = int(files[-1].name[:4]) + 1 if files else 1
        storage.folder.mkdir(parents=True, exist_ok=True)
        target = storage.folder / f"{number:04d}_{tag}.json"
        target.write_text(text if text is not None else format_run_json(data), encoding="utf-8")
        return True

    def close(self) -> None:
        """Nothing to release."""
