"""Changes a person accepted on purpose (a bigger model, a new feature that costs joules): still shown, no longer
reported as open.

The marks live in a small TOML file in the repository, ``.energy-bench/accepted.toml`` by default, so that accepting
a change is a reviewed line in a pull request beside the code that explains it, whichever store keeps the runs::

    [[accepted]]
    benchmark = "tests/test_model.py::test_inference"
    machine = "Linux-CPython-3.11-64bit"   # "*": every machine
    metric = "joules"
    commit = "5d6e7f8a..."                  # the first commit after the change (a prefix is enough)
    reason = "resnet50 instead of resnet18"

Reading the file runs nothing (TOML is data); a malformed one is an :class:`AcceptedError` naming it.
"""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from energy_bench.errors import EnergyBenchError
from energy_bench.runs.text import printable

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

if TYPE_CHECKING:
    from energy_bench.history.changepoints import Change
    from energy_bench.history.series import Series

DEFAULT_ACCEPTED = ".energy-bench/accepted.toml"
ANY_MACHINE = "*"
#: a marks file is a few lines per accepted change; anything far larger is not one
MAX_BYTES = 4 * 2**20
_KEYS = ("benchmark", "machine", "metric", "commit")
HEADER = (
    "# Changes accepted on purpose: `energy-bench history show` lists them as accepted, not as open.\n"
    "# Written by `energy-bench history accept`; review it like code.\n"
)


class AcceptedError(EnergyBenchError, ValueError):
    """A marks file that cannot be read or used; the message names the file (and the entry) and says why."""


@dataclass(frozen=True)
class Accepted:
    """One accepted change: a benchmark's metric on a machine, changed at ``commit`` (the first commit after)."""

    benchmark: str
    machine: str
    metric: str
    commit: str
    reason: str = ""

    def matches(self, series: Series, change: Change) -> bool:
        return (
            self.benchmark == series.benchmark
            and self.metric == series.metric
            and self.machine in (ANY_MACHINE, series.machine)
            and change.after_commit is not None
            and change.after_commit.startswith(self.commit)
        )


def load_accepted(path: Path | str) -> list[Accepted]:
    """The marks in ``path``; none when the file does not exist."""
    path = Path(path)
    where = printable(str(path))
    if not path.exists():
        return []
    try:
        if path.stat().st_size > MAX_BYTES:
            raise AcceptedError(f"{where}: too large for a file of accepted changes")
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise AcceptedError(f"{where}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise AcceptedError(f"{where}: not valid TOML ({printable(str(exc))})") from None
    entries = data.get("accepted", [])
    if not isinstance(entries, list):
        raise AcceptedError(f"{where}: 'accepted' must be an array of tables ([[accepted]])")
    return [parse_entry(entry, f"{where}: entry {number}") for number, entry in enumerate(entries, 1)]


def parse_entry(entry: object, where: str) -> Accepted:
    if not isinstance(entry, dict):
        raise AcceptedError(f"{where} is not a table")
    for key in _KEYS:
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise AcceptedError(f"{where}: '{key}' must be a non-empty string")
    reason = entry.get("reason", "")
    if not isinstance(reason, str):
        raise AcceptedError(f"{where}: 'reason' must be a string")
    return Accepted(*(entry[key] for key in _KEYS), reason=reason)


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string: quotes, backslashes and every control character escaped.

    :class:`AcceptedError` for text TOML cannot hold (a lone surrogate, from a name that was not valid UTF-8).
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise AcceptedError(f"{printable(text)!r} cannot be written to a TOML file") from None
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif unicodedata.category(char) == "Cc":
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def format_entry(mark: Accepted) -> str:
    """One ``[[accepted]]`` table, as :func:`load_accepted` reads it back."""
    lines = ["[[accepted]]"]
    lines += [f"{key} = {toml_string(getattr(mark, key))}" for key in (*_KEYS, "reason")]
    return "\n".join(lines) + "\n"


def append_accepted(path: Path | str, marks: Iterable[Accepted]) -> None:
    """Add ``marks`` at the end of ``path`` (created with its folder and a header when missing)."""
    path = Path(path)
    load_accepted(path)  # never append to a file that does not read back
    text = "".join("\n" + format_entry(mark) for mark in marks)
    path.parent.mkdir(parents=True, exist_ok=True)
    exists = path.exists()
    with path.open("a", encoding="utf-8") as out:
        out.write(text if exists else HEADER + text)
