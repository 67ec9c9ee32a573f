"""A throwaway PostgreSQL cluster for tests: `initdb` in a temporary folder, the server on a free loopback port with
its socket in the same folder, password authentication, stopped with `pg_ctl stop -m fast` and removed.

initdb refuses to run as root (CI runs as root): the cluster then belongs to the `postgres` system user that
Debian's package creates, and every PostgreSQL program runs as that user through `runuser`.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tests.processes import free_port

SUPERUSER = "postgres"
MISSING = (
    "PostgreSQL is missing: the tracking server's tests on PostgreSQL start a cluster of their own with `initdb` and "
    "`pg_ctl`, looked for on PATH and in /usr/lib/postgresql/*/bin. Install Debian's `postgresql` package "
    "(`make test` does, as root)."
)
NO_SYSTEM_USER = "run as root, PostgreSQL needs the `postgres` system user (Debian's `postgresql` package creates it)"
SETTINGS = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{root}'
# a throwaway cluster: durability is not wanted
fsync = off
synchronous_commit = off
full_page_writes = off
"""


@dataclass(frozen=True)
class Cluster:
    """A running cluster; `uri()` names a database without the password, which `env` carries as libpq reads it."""

    root: Path
    bin_dir: Path
    port: int
    password: str
    run_as: tuple[str, ...]

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    @property
    def env(self) -> dict[str, str]:
        """What a client process needs beside the URI: the password, kept off its command line."""
        return {"PGPASSWORD": self.password}

    def uri(self, database: str) -> str:
        """The SQLAlchemy URI of `database` on this cluster, as MLflow takes it (no password in it)."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def query(self, database: str, sql: str, *params: object) -> list[tuple[object, ...]]:
        """The rows `sql` (with `%s` placeholders for `params`) returns in `database`, none for a statement; run as
        the superuser, outside a transaction."""
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=SUPERUSER, password=self.password, dbname=database, autocommit=True
        ) as connection:  # autocommit: CREATE DATABASE cannot run in a transaction
            cursor = connection.execute(sql, params or None)
            return cursor.fetchall() if cursor.description else []

    def create_database(self, name: str) -> str:
        """Create database `name` (letters, digits and underscores); returns its URI."""
        self.query("postgres", f'CREATE DATABASE "{name}"')
        return self.uri(name)

    def stop(self) -> None:
        """Stop the server (`pg_ctl stop -m fast`: open sessions are ended) and remove the cluster's folder."""
        pg_ctl = str(self.bin_dir / "pg_ctl")
        subprocess.run([*self.run_as, pg_ctl, "stop", "-D", str(self.data_dir), "-m", "fast"], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


def find_bin_dir() -> Path | None:
    """The folder of `initdb`, `pg_ctl` and `postgres`: initdb's on PATH, else the newest /usr/lib/postgresql/*/bin."""
    on_path = shutil.which("initdb")
    candidates = [Path(on_path).resolve().parent] if on_path else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_major_version, reverse=True)
    for folder in candidates:
        if all((folder / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return folder
    return None


def start_cluster() -> Cluster:
    """initdb a new cluster in a temporary folder and start it; raises FileNotFoundError (MISSING) without
    PostgreSQL, RuntimeError (with the server's log) when it does not start."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise FileNotFoundError(MISSING)
    run_as, owner = _system_user()
    root = Path(tempfile.mkdtemp(prefix="pg-cluster-"))  # not under pytest's tmp_path: root-only when run as root
    if owner is not None:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    cluster = Cluster(root, bin_dir, free_port(), secrets.token_urlsafe(16), run_as)
    password_file = root / "password"
    password_file.write_text(cluster.password)
    if owner is not None:
        os.chown(password_file, owner.pw_uid, owner.pw_gid)
    initdb = [str(bin_dir / "initdb"), "-D", str(cluster.data_dir), "-U", SUPERUSER, f"--pwfile={password_file}"]
    initdb += ["--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync"]
    _run([*run_as, *initdb], cluster)
    password_file.unlink()
    with (cluster.data_dir / "postgresql.conf").open("a") as conf:
        conf.write(SETTINGS.format(port=cluster.port, root=root))
    pg_ctl = [str(bin_dir / "pg_ctl"), "start", "-D", str(cluster.data_dir), "-l", str(cluster.log), "-w", "-t", "60"]
    _run([*run_as, *pg_ctl], cluster)
    return cluster


def _system_user() -> tuple[tuple[str, ...], pwd.struct_passwd | None]:
    """How to run PostgreSQL's programs and who owns the cluster: this user, or as root `postgres` via runuser."""
    if os.geteuid() != 0:
        return (), None
    try:
        owner = pwd.getpwnam(SUPERUSER)
    except KeyError as error:
        raise RuntimeError(NO_SYSTEM_USER) from error
    return ("runuser", "-u", SUPERUSER, "--"), owner


def _run(command: list[str], cluster: Cluster) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        log = cluster.log.read_text()[-3000:] if cluster.log.exists() else ""
        cluster.stop()
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}{log}")


def _major_version(folder: Path) -> int:
    name = folder.parent.name
    return int(name) if name.isdigit() else 0
