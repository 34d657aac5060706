"""A throwaway PostgreSQL server for the tests: ``initdb`` into a temporary folder, then
``pg_ctl`` on a free loopback port, trust authentication, fsync off; stopped and deleted
afterwards. The binaries come from Debian's ``postgresql`` package (`make postgres`
installs it; they live under /usr/lib/postgresql/<version>/bin). PostgreSQL refuses to
run as root, so as root the server runs as the ``postgres`` user the package creates.

Without the binaries the tests that need the server are skipped, unless
CALLFLEET_REQUIRE_POSTGRES=1 (CI sets it in .ci/run): then they fail.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

REQUIRE_ENV = "CALLFLEET_REQUIRE_POSTGRES"
USER = "callfleet"


class PostgresMissing(RuntimeError):
    pass


def pg_bin_dir() -> Path | None:
    """The newest PostgreSQL server binaries installed (Debian layout first)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).resolve().parent if pg_ctl else None


def required() -> bool:
    return os.environ.get(REQUIRE_ENV) == "1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """One server, one superuser (``callfleet``), databases made per test."""

    def __init__(self) -> None:
        bin_dir = pg_bin_dir()
        if bin_dir is None or not (bin_dir / "initdb").exists():
            raise PostgresMissing(
                "PostgreSQL server binaries not found: `make postgres` installs Debian's "
                "postgresql package")
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="callfleet-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._as: list[str] = []
        if os.geteuid() == 0:  # postgres will not run as root
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresMissing("running as root and no 'postgres' user to run the "
                                      "server as (Debian's postgresql package creates it)") from None
            os.chown(self.root, account.pw_uid, account.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self._databases = 0

    def _run(self, *args: str) -> None:
        result = subprocess.run([*self._as, *args], capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed: {result.stderr[-2000:]}"
                               f"{result.stdout[-1000:]}")

    def start(self) -> PostgresServer:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", USER, "--auth=trust",
                  "-E", "UTF8", "--no-sync", "--locale=C")
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-w",
                  "-t", "60", "-l", str(self.root / "server.log"), "start")
        return self

    def stop(self) -> None:
        try:
            if self.data.exists():
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w",
                          "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def pause(self) -> None:
        """Stop the server, keeping its data (a database outage)."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def resume(self) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-w",
                  "-t", "60", "-l", str(self.root / "server.log"), "start")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; returns its URL."""
        import psycopg  # the driver the store pins

        self._databases += 1
        name = f"t{os.getpid()}_{self._databases}"
        with psycopg.connect(host="127.0.0.1", port=self.port, user=USER, dbname="postgres",
                             autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)
