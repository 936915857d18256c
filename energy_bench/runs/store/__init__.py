"""Where saved runs are kept and found, apart from how a run is parsed (:mod:`~energy_bench.runs.parse`) and pooled
(:mod:`~energy_bench.runs.pool`).

Two kinds of store answer the same questions (:class:`RunStore`): pytest-benchmark's files
(:mod:`~energy_bench.runs.store.files`) and the history database. The gate, ``compare`` and the history commands ask
"the last N runs of this machine and branch" or "every run of one benchmark" without knowing which answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from energy_bench.runs.parse import SavedRun


class RunStore(Protocol):
    """The questions every store answers. Runs come back oldest first (commit time, then save time)."""

    #: where the store is, fit to print: a database URL with its password masked
    display_url: str

    def add(self, data: Mapping[str, Any], *, origin: str | None = None) -> bool:
        """Keep one run (pytest-benchmark's JSON, as saved) in one transaction; False when it was already kept.

        ``origin``: where the run came from (a file path), for messages.
        """

    def last(
        self, count: int, *, machine: str | None = None, branch: str | None = None, before: str | None = None
    ) -> list[SavedRun]:
        """The ``count`` newest runs of ``machine`` (None: any) on ``branch`` (None: any), oldest first.

        ``before``: a run's key (see :attr:`SavedRun.label`) whose run and later ones are left out.
        """

    def runs(
        self, *, machine: str | None = None, branch: str | None = None, benchmark: str | None = None
    ) -> list[SavedRun]:
        """Every run (of ``machine``, on ``branch``), oldest first; with ``benchmark`` only that benchmark's record."""

    def close(self) -> None:
        """Release connections and files."""
