"""A real PostgreSQL server for the tests: the one named by SALESINTEL_TEST_POSTGRES_URL (`.ci/run` starts one and
sets it), or else a throwaway cluster started here from the machine's PostgreSQL binaries.

Each test gets its own schema in that server (`fresh_schema_url`), named in the URL's search_path, so tests running
side by side never see each other's tables and nothing needs dropping between them.

    python -m tests.postgres_server start DIR   # start a cluster in DIR, print its URL
    python -m tests.postgres_server stop DIR
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import quote

ENV_URL = "SALESINTEL_TEST_POSTGRES_URL"
BACKENDS = ["sqlite", "postgresql"]
"""The databases a store can live in: tests of the store layer run on each (the `store_target` fixture)."""
USER = "salesintel"


def binaries() -> Path | None:
    """The folder with initdb and pg_ctl: on PATH, or Debian's /usr/lib/postgresql/<version>/bin (newest)."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    return Path(versions[-1]).parent if versions else None


def _as_server_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the `postgres` account Debian's package creates."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


def start(folder: Path) -> str:
    """initdb and start a cluster in `folder` (Unix socket only, no fsync: a test server), and return its URL."""
    bin_dir = binaries()
    if bin_dir is None:
        raise RuntimeError("no PostgreSQL binaries (install Debian's postgresql package)")
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        os.chown(folder, account.pw_uid, account.pw_gid)
    os.chmod(folder, 0o777)
    data = folder / "data"
    subprocess.run(
        _as_server_user(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", USER, "--auth=trust", "--no-locale", "-E", "UTF8"]
        ),
        check=True,
        capture_output=True,
    )
    options = (
        f"-k {folder} -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        " -c max_connections=400 -c shared_buffers=128MB"
    )
    subprocess.run(
        _as_server_user(
            [str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start"]
        ),
        check=True,
        capture_output=True,
    )
    return f"postgresql://{USER}@/postgres?host={quote(str(folder), safe='')}"


def stop(folder: Path) -> None:
    bin_dir = binaries()
    subprocess.run(
        _as_server_user([str(bin_dir / "pg_ctl"), "-D", str(folder / "data"), "-m", "immediate", "stop"]),
        check=False,
        capture_output=True,
    )


def fresh_schema_url(server_url: str) -> tuple[str, str]:
    """A new, empty schema in the server, and a URL whose connections use it: (url, schema)."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in server_url else "?"
    return f"{server_url}{separator}options={quote(f'-csearch_path={schema}', safe='')}", schema


def drop_schema(server_url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def new_store_target(request, folder: Path, backend: str) -> str:
    """Where a test's store lives on `backend`: a SQLite file in `folder`, or a fresh schema in the test PostgreSQL
    server (the `postgres_server` fixture), dropped when the requesting fixture's scope ends."""
    if backend == "sqlite":
        return str(folder / "s.db")
    server = request.getfixturevalue("postgres_server")
    url, schema = fresh_schema_url(server)
    request.addfinalizer(lambda: drop_schema(server, schema))
    return url


if __name__ == "__main__":
    action, where = sys.argv[1], Path(sys.argv[2])
    if action == "start":
        print(start(where))
    else:
        stop(where)
