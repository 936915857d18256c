"""A fake ``/sys/class/powercap`` tree in a temporary directory.

Layout as on an Intel server: ``intel-rapl:N`` (package-N) with sub-zones ``intel-rapl:N:0``
(core) and ``intel-rapl:N:1`` (dram), optionally ``psys`` and the ``intel-rapl-mmio:0`` duplicate,
which a correct meter must skip. Files are rewritten in place (same inode), like sysfs values.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_MAX_RANGE_UJ = 262_143_328_850  # a typical package range (~262 kJ)


class FakePowercap:
    def __init__(
        self,
        root: Path,
        *,
        packages: int = 1,
        dram: bool = True,
        core: bool = True,
        psys: bool = False,
        mmio: bool = False,
        max_range_uj: int = DEFAULT_MAX_RANGE_UJ,
        start_uj: int = 1_000_000,
    ):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_range_uj = max_range_uj
        #: zone key ("package-0", "core-0", "dram-0", "psys", "mmio-package-0") -> zone directory
        self.zones: dict[str, Path] = {}
        for n in range(packages):
            top = self._zone(f"intel-rapl:{n}", f"package-{n}", f"package-{n}", start_uj)
            if core:
                self._zone(f"intel-rapl:{n}/intel-rapl:{n}:0", "core", f"core-{n}", start_uj)
            if dram:
                sub = "1" if core else "0"
                self._zone(f"intel-rapl:{n}/intel-rapl:{n}:{sub}", "dram", f"dram-{n}", start_uj)
            assert top.is_dir()
        if psys:
            self._zone(f"intel-rapl:{packages}", "psys", "psys", start_uj)
        if mmio:
            self._zone("intel-rapl-mmio:0", "package-0", "mmio-package-0", start_uj)

    def _zone(self, rel: str, name: str, key: str, start_uj: int) -> Path:
        path = self.root / rel
        path.mkdir(parents=True)
        (path / "name").write_text(name + "\n")
        (path / "max_energy_range_uj").write_text(f"{self.max_range_uj}\n")
        self.zones[key] = path
        self.set(key, start_uj)
        return path

    def counter_path(self, key: str) -> Path:
        return self.zones[key] / "energy_uj"

    def get(self, key: str) -> int:
        return int(self.counter_path(key).read_text())

    def set(self, key: str, value_uj: int) -> None:
        with open(self.counter_path(key), "w") as f:  # truncate in place: open fds see the new value
            f.write(f"{value_uj}\n")

    def add(self, key: str, joules_uj: int) -> None:
        """Let ``joules_uj`` microjoules pass through zone ``key``, wrapping like the hardware."""
        self.set(key, (self.get(key) + joules_uj) % self.max_range_uj)
