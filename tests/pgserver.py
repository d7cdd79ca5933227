"""A throwaway PostgreSQL server for tests, benchmarks and CI.

Owns finding the server binaries (``initdb``/``pg_ctl`` under
``/usr/lib/postgresql/*/bin``, preferring version 15, or ``BLOCKLIST_PG_BIN``),
starting a private cluster in a temporary directory on 127.0.0.1 with trust
authentication on a free port, and stopping and removing it again. The server
binaries refuse to run as root, so as root they run as the ``postgres`` user
(``runuser``, else ``su``) in a directory that user owns.

It is not used by ``apply``: production state points at a real server through
a DSN. ``PgServerUnavailable`` means "no binaries here" (tests skip on it);
``PgServerError`` means they are there but the server did not start.

    with PgServer() as server:
        dsn = server.create_database("scratch")

``python tests/pgserver.py`` starts one and prints its DSN until
interrupted.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

PREFERRED_MAJOR = 15
SERVER_USER = "postgres"  # the account that runs the server when we are root
_START_ATTEMPTS = 3  # a free port can be taken between choosing it and binding it


class PgServerUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


class PgServerError(RuntimeError):
    """The binaries are there but the server could not be started."""


def find_pg_bin(preferred_major: int = PREFERRED_MAJOR) -> Path:
    """The directory holding ``initdb`` and ``pg_ctl``."""
    override = os.environ.get("BLOCKLIST_PG_BIN")
    if override:
        if _has_binaries(Path(override)):
            return Path(override)
        raise PgServerUnavailable(f"BLOCKLIST_PG_BIN={override} holds no initdb/pg_ctl")
    found: dict[int, Path] = {}
    for candidate in glob.glob("/usr/lib/postgresql/*/bin"):
        path = Path(candidate)
        major = path.parent.name
        if major.isdigit() and _has_binaries(path):
            found[int(major)] = path
    if found:
        return found.get(preferred_major) or found[max(found)]
    on_path = shutil.which("pg_ctl")
    if on_path and _has_binaries(Path(on_path).parent):
        return Path(on_path).parent
    raise PgServerUnavailable(
        "no PostgreSQL server binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin "
        "or on PATH; install postgresql-15 or set BLOCKLIST_PG_BIN"
    )


def _has_binaries(path: Path) -> bool:
    return all(os.access(path / name, os.X_OK) for name in ("initdb", "pg_ctl"))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgServer:
    """A private PostgreSQL cluster; ``durable=False`` turns fsync off (tests only)."""

    def __init__(self, *, bin_dir: Path | None = None, durable: bool = False) -> None:
        self.bin_dir = bin_dir
        self.durable = durable
        self.port: int | None = None
        self.base_dir: Path | None = None
        self._owner: pwd.struct_passwd | None = None

    # -- lifetime ---------------------------------------------------------------------

    def start(self) -> str:
        """Create and start the cluster; return the DSN of its ``postgres`` database."""
        if self.port is not None:
            return self.dsn
        bin_dir = self.bin_dir or find_pg_bin()
        self.bin_dir = bin_dir
        if os.geteuid() == 0:
            try:
                self._owner = pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise PgServerUnavailable(
                    f"running as root and there is no {SERVER_USER!r} user to run "
                    "PostgreSQL as (initdb and pg_ctl refuse to run as root)"
                ) from None
        self.base_dir = Path(tempfile.mkdtemp(prefix="blocklist-pg-"))
        atexit.register(self.stop)
        try:
            if self._owner is not None:
                os.chown(self.base_dir, self._owner.pw_uid, self._owner.pw_gid)
            self._run(
                "initdb",
                ["-D", str(self.data_dir), "-A", "trust", "-U", "postgres", "-E", "UTF8"]
                + ["--locale=C", "--no-sync"],
            )
            self._start_server()
        except BaseException:
            self.stop()
            raise
        return self.dsn

    def _start_server(self) -> None:
        settings = self.data_dir / "postgresql.conf"
        base = settings.read_text()
        last_log = ""
        for _ in range(_START_ATTEMPTS):
            port = _free_port()
            extra = [
                "listen_addresses = '127.0.0.1'",
                f"port = {port}",
                f"unix_socket_directories = '{self.base_dir}'",
                "max_connections = 60",
            ]
            if not self.durable:
                extra += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
            settings.write_text(base + "\n# blocklist pgserver\n" + "\n".join(extra) + "\n")
            try:
                self._run(
                    "pg_ctl",
                    ["-D", str(self.data_dir), "-l", str(self.log_file)]
                    + ["-w", "-t", "60", "start"],
                )
            except PgServerError:
                last_log = self._log_tail()
                if "could not bind" in last_log or "in use" in last_log:
                    continue  # somebody took the port: try another
                raise
            self.port = port
            return
        raise PgServerError(f"PostgreSQL did not start after {_START_ATTEMPTS} tries:\n{last_log}")

    def stop(self) -> None:
        """Stop the server (fast, immediate mode) and delete its directory."""
        atexit.unregister(self.stop)
        base = self.base_dir
        if base is None:
            return
        data = base / "data"
        try:
            if (data / "postmaster.pid").exists():
                try:
                    self._run("pg_ctl", ["-D", str(data), "-m", "immediate", "-w", "stop"])
                except PgServerError:
                    _kill_postmaster(data)
        finally:
            self.base_dir = None
            self.port = None
            shutil.rmtree(base, ignore_errors=True)

    def __enter__(self) -> PgServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- using it ---------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        assert self.base_dir is not None, "server not started"
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        assert self.base_dir is not None, "server not started"
        return self.base_dir / "server.log"

    @property
    def dsn(self) -> str:
        return self.dsn_for("postgres")

    def dsn_for(self, database: str) -> str:
        if self.port is None:
            raise PgServerError("server not started")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database and return its DSN."""
        return create_database(self.dsn, name)

    # -- plumbing ---------------------------------------------------------------------

    def _run(self, tool: str, args: list[str]) -> None:
        assert self.bin_dir is not None
        argv = [str(self.bin_dir / tool), *args]
        if self._owner is not None:
            if shutil.which("runuser"):
                argv = ["runuser", "-u", self._owner.pw_name, "--", *argv]
            else:
                argv = ["su", self._owner.pw_name, "-s", "/bin/sh", "-c", shlex.join(argv)]
        # Output goes to a file, not a pipe: the postmaster that pg_ctl leaves behind
        # must not hold our pipe open.
        with tempfile.TemporaryFile() as out:
            done = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.base_dir,  # a directory the server user can enter
                check=False,
            )
            if done.returncode != 0:
                out.seek(0)
                output = out.read().decode(errors="replace").strip()
                raise PgServerError(f"{tool} failed (exit {done.returncode}): {output[-2000:]}")

    def _log_tail(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-2000:]
        except OSError:
            return ""


def create_database(admin_dsn: str, name: str) -> str:
    """``CREATE DATABASE name`` on the server of ``admin_dsn``; return the new DSN."""
    import psycopg
    import psycopg.conninfo
    from psycopg import sql

    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise ValueError(f"database name {name!r}: use lower-case letters, digits, _")
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return psycopg.conninfo.make_conninfo(admin_dsn, dbname=name)


def _kill_postmaster(data: Path) -> None:
    try:
        pid = int((data / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError, IndexError):
        pass


def main() -> None:  # pragma: no cover - manual use
    import time

    with PgServer() as server:
        print(server.dsn, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":  # pragma: no cover
    main()
