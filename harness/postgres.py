"""A throwaway PostgreSQL server for the multi-worker tuning tests and the kill_tuning reliability scenario: a new
cluster in a temporary folder, on 127.0.0.1 and a free port, with one database; removed when the block ends.

Needs Debian's ``postgresql`` package (/usr/lib/postgresql/<version>/bin; .ci/system-deps.sh installs it).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from harness.server import free_port


class PostgresError(RuntimeError):
    """PostgreSQL is missing, or one of its tools failed."""


def postgres_bin() -> Path:
    """The newest installed PostgreSQL's bin folder."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        raise PostgresError("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): install Debian's "
                            "'postgresql' package (apt-get install postgresql; .ci/system-deps.sh does it)")
    return Path(found[-1]).parent


@contextlib.contextmanager
def throwaway_postgres(database: str = "optuna") -> Iterator[str]:
    """Start a PostgreSQL cluster; yields its URL (user ``tune``, no password, trust on loopback only)."""
    bin_dir = postgres_bin()
    # initdb and postgres refuse to run as root: run them as the postgres system user, in a directory it owns
    # (not under pytest's tmp, which only root may enter)
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="tune-pg-"))
    if as_user:
        shutil.chown(root, "postgres", "postgres")
    data = root / "data"
    port = free_port()

    def pg(tool: str, *args: str) -> None:
        result = subprocess.run([*as_user, str(bin_dir / tool), *args], capture_output=True, text=True, cwd=root,
                                check=False)
        if result.returncode != 0:
            raise PostgresError(f"{tool} failed: {result.stdout}{result.stderr}")

    try:
        pg("initdb", "-D", str(data), "-U", "tune", "--auth=trust", "--no-sync")
        # fsync off: a throwaway cluster; -k: the socket in a directory the postgres user owns
        pg("pg_ctl", "-D", str(data), "-l", str(root / "log"), "-w", "-t", "60", "start",
           "-o", f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off")
        try:
            pg("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "tune", database)
            yield f"postgresql://tune@127.0.0.1:{port}/{database}"
        finally:
            pg("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)
