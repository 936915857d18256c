"""The study's on-disk cache: a private folder, writes that never leave half a file, loads that never run code.

- ``cache_dir()``: ``$ENERGY_BENCH_CACHE``, else ``$XDG_CACHE_HOME/energy-bench``, else ``~/.cache/energy-bench``;
  folders made here are private to the user (mode 0700).
- ``write_atomic(path, write, what)``: ``write`` fills a temporary file beside ``path``, which is then renamed
  onto it, so a crash or a parallel run never sees half a file. A full or read-only cache is not an error: the
  temporary file is removed, an ``EnergyBenchWarning`` says the result is not cached, and the caller keeps its work.
- ``read_or_discard(path, read, what)``: a file that cannot be read (truncated, corrupt, from another format) is
  removed with a warning, and the caller rebuilds it.
- ``content_key(ident)``: a short SHA-256 of canonical JSON, for file names that depend on what was computed and
  never on where files live. ``versions()``: the versions that change results, for those keys.

Readers pass only ``torch.load(..., weights_only=True)`` or JSON parsers as ``read``: nothing read from a cache
can execute code.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from energy_bench.errors import EnergyBenchWarning

T = TypeVar("T")

PRIVATE_MODE = 0o700
#: bytes read at a time when hashing files (weights files are up to 0.5 GB)
HASH_CHUNK = 1 << 22


def cache_dir() -> Path:
    """$ENERGY_BENCH_CACHE, else $XDG_CACHE_HOME/energy-bench, else ~/.cache/energy-bench."""
    if os.environ.get("ENERGY_BENCH_CACHE"):
        return Path(os.environ["ENERGY_BENCH_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "energy-bench"


def make_private_dir(path: Path) -> Path:
    """Create ``path`` and missing parents with mode 0700 (whatever the umask); existing folders stay as they are."""
    missing = []
    current = Path(path)
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # a parallel run made it first
            folder.mkdir(mode=PRIVATE_MODE)
            os.chmod(folder, PRIVATE_MODE)
    return path


def warn(message: str) -> None:
    warnings.warn(message, EnergyBenchWarning, stacklevel=3)


def write_atomic(path: Path, write: Callable[[Path], None], what: str) -> bool:
    """Write ``path`` through a temporary file and a rename; False (with a warning) when the cache cannot take it."""
    tmp = None
    try:
        make_private_dir(path.parent)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
        write(tmp)
        os.replace(tmp, path)
        tmp = None
        return True
    except (OSError, RuntimeError) as exc:  # torch.save reports a full disk as a RuntimeError
        warn(f"{what} not cached: cannot write {path} ({_reason(exc)}); the run goes on without the cache")
        return False
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()


def read_or_discard(path: Path, read: Callable[[Path], T], what: str) -> T | None:
    """``read(path)``, or None when there is no file or it is unreadable (then it is removed, with a warning)."""
    if not path.is_file():
        return None
    try:
        return read(path)
    except Exception as exc:  # any failure to read or verify means the same: rebuild it
        removed = "removed"
        try:
            path.unlink()
        except OSError as unlink_exc:
            removed = f"could not remove it ({_reason(unlink_exc)})"
        warn(f"{what}: {path} is unreadable or corrupt ({_reason(exc)}); {removed}, rebuilding it")
        return None


def _reason(exc: BaseException) -> str:
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    first = (text or type(exc).__name__).strip().splitlines()[0]
    return first[:200]


def content_key(ident: Any, length: int = 16) -> str:
    """A short, stable hash of ``ident`` (plain JSON): file names that say what was computed."""
    text = json.dumps(ident, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def versions() -> dict[str, str | None]:
    """Versions of the code that computes cached results: energy-bench, torch, torchvision, torch-pruning."""
    import torch
    import torchvision

    import energy_bench

    try:
        import torch_pruning

        pruning = torch_pruning.__version__
    except ImportError:
        pruning = None
    return {
        "energy-bench": energy_bench.__version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "torch-pruning": pruning,
    }


def source_sha256(module: Any) -> str | None:
    """The SHA-256 of a module's source file: code changes between versions change cache keys too."""
    path = getattr(module, "__file__", None)
    try:
        return file_sha256(Path(path))[:16] if path else None
    except OSError:
        return None
