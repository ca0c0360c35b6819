"""A throwaway PostgreSQL server for the tests: PostgreSQL's own initdb and pg_ctl on a
temporary folder and a free port (found on PATH or under /usr/lib/postgresql/*/bin; `.ci/run`
installs them). PostgreSQL refuses to run as root, so as root (CI containers) the server runs
as the `postgres` user the package creates.

Connections over TCP need the password (scram-sha-256), which the tests find in $PGPASSWORD,
as a user's shell would: URLs name user, host, port and database only.
"""

from __future__ import annotations

import glob
import itertools
import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg

from helpers import HANG_GUARD, free_port

USER = "facecnn"
GALLERIES = "galleries"  # the database the tests' galleries live in, a schema each
_SERVER_USER = "postgres"  # who runs the server when the tests run as root


def _binary(name: str) -> str:
    """A PostgreSQL program: from PATH, else from the newest /usr/lib/postgresql/N/bin."""
    found = shutil.which(name) or next(iter(sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
        reverse=True)), None)
    if found is None:
        raise RuntimeError(f"PostgreSQL's {name} was not found: install the postgresql "
                           f"package (.ci/run does)")
    return found


class Cluster:
    """One PostgreSQL server on 127.0.0.1:port, its files in `root`."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="facecnn-pg-"))  # not below pytest's 0700
        self.password = secrets.token_hex(12)
        self.port = free_port()
        self._names = (f"g{i}" for i in itertools.count())
        self._as = {"user": _SERVER_USER} if os.geteuid() == 0 else {}
        if self._as:
            shutil.chown(self.root, _SERVER_USER)
        pwfile = self.root / "pw"
        pwfile.write_text(self.password)
        if self._as:
            shutil.chown(pwfile, _SERVER_USER)
        self._run(_binary("initdb"), "-D", str(self.root / "data"), "-U", USER,
                  f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=scram-sha-256",
                  "-E", "UTF8", "--locale=C", "--no-sync")
        self.start()
        self.sql(f"CREATE DATABASE {GALLERIES}")

    def _run(self, *args: str) -> None:
        done = subprocess.run(args, cwd=self.root, capture_output=True, text=True,
                              timeout=HANG_GUARD, **self._as)
        if done.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed: {done.stderr or done.stdout}")

    def _pg_ctl(self, *args: str) -> None:
        self._run(_binary("pg_ctl"), "-D", str(self.root / "data"), "-w", *args)

    def start(self) -> None:
        # durability is not under test: no fsync makes CREATE DATABASE and commits quick
        self._pg_ctl("-l", str(self.root / "log"), "-o",
                     f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                     f"-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
                     "start")

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "stop")

    def url(self, dbname: str = "postgres", password: str | None = None) -> str:
        """postgresql://facecnn[:password]@127.0.0.1:port/dbname"""
        secret = f":{password}" if password is not None else ""
        return f"postgresql://{USER}{secret}@127.0.0.1:{self.port}/{dbname}"

    def sql(self, statement: str, dbname: str = "postgres") -> list[tuple]:
        """Run one statement as the superuser (autocommit); its rows, if any."""
        with psycopg.connect(self.url(dbname, self.password), autocommit=True) as conn:
            cursor = conn.execute(statement)
            return cursor.fetchall() if cursor.description else []

    def new_gallery(self) -> str:
        """The URL of a new, empty place for a gallery: a schema of its own in the database
        GALLERIES (users may do the same: libpq's `options` set the search path), since a
        new schema takes milliseconds and a new database a fifth of a second."""
        name = next(self._names)
        self.sql(f"CREATE SCHEMA {name}", GALLERIES)
        return f"{self.url(GALLERIES)}?options=-csearch_path%3D{name}"

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
