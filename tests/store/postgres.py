"""A real PostgreSQL server for the store's tests, started and stopped by the test session itself.

Debian's ``postgresql`` package (``.ci/run`` installs it when its binaries are missing): it is what a team's server
runs, needs no download at test time, and its ``initdb``/``pg_ctl`` give a throwaway cluster in a temporary folder
in about a second. The server refuses to run as root, so as root the cluster belongs to the ``postgres`` user the
package creates, and is driven through ``runuser``. It listens on 127.0.0.1 only, with password authentication
(scram-sha-256), so wrong passwords are refused for real.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

USER = "energy"
PASSWORD = "s3cret-Pa55"  # a throwaway cluster's; the tests check it never shows in output


class PostgresUnavailable(RuntimeError):
    pass


@dataclass
class PostgresServer:
    port: int
    data: Path
    bin: Path
    run_as: list[str]

    def url(self, database: str = "postgres", password: str = PASSWORD) -> str:
        return f"postgresql://{USER}:{password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url().replace("postgresql://", "postgresql://", 1), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # a name the tests make, not input
        return self.url(name)

    def stop(self) -> None:
        subprocess.run([*self.run_as, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
                       capture_output=True, check=False)  # fmt: skip
        shutil.rmtree(self.data.parent, ignore_errors=True)


def find_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    if found and Path(found).resolve().parent.joinpath("initdb").exists():
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    return Path(versions[-1]).parent if versions else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start() -> PostgresServer:
    bin_dir = find_bin()
    if bin_dir is None:
        raise PostgresUnavailable("no PostgreSQL server binaries (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="eb-pg-"))
    data, pwfile = root / "data", root / "pw"
    pwfile.write_text(PASSWORD)
    run_as: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            raise PostgresUnavailable("running as root without runuser: PostgreSQL refuses to run as root")
        run_as = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
        shutil.chown(pwfile, "postgres")
        root.chmod(0o700)
    init = [*run_as, str(bin_dir / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={pwfile}",
            "--auth=scram-sha-256", "--encoding=UTF8", "--no-sync"]  # fmt: skip
    done = subprocess.run(init, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PostgresUnavailable(f"initdb failed: {done.stderr.strip()[-500:]}")
    port = _free_port()
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root} -c fsync=off"
    command = [*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w"]
    started = subprocess.run([*command, "-t", "60", "start"], capture_output=True, text=True, check=False)
    if started.returncode != 0:
        log = (root / "log").read_text(errors="replace")[-500:] if (root / "log").exists() else started.stderr
        raise PostgresUnavailable(f"pg_ctl start failed: {log.strip()}")
    server = PostgresServer(port, data, bin_dir, run_as)
    deadline = time.monotonic() + 30
    while True:
        try:
            import psycopg

            psycopg.connect(server.url(), connect_timeout=2).close()
            return server
        except Exception:
            if time.monotonic() > deadline:
                server.stop()
                raise
            time.sleep(0.2)
