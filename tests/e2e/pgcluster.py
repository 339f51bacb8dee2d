"""A throwaway PostgreSQL cluster for tests that must restart, freeze or cut off the database:
initdb into a temporary folder, its own port on 127.0.0.1, trust authentication. The shared
server stays untouched."""

import os
import shutil
import signal
import subprocess
import tempfile
import time

PG_BIN = os.environ.get("CV_TEST_PG_BIN", "/usr/lib/postgresql/15/bin")


def _as_postgres(argv):
    """initdb and pg_ctl refuse to run as root: run them as the postgres user then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


class PgCluster:
    def __init__(self, port):
        self.port = port
        self.dir = tempfile.mkdtemp(prefix="conveyor-pg-")
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "postgres.log")
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(_as_postgres([os.path.join(PG_BIN, "initdb"), "-D", self.data, "-U",
                                     "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]),
                       check=True, capture_output=True)
        with open(os.path.join(self.data, "postgresql.conf"), "a") as conf:
            conf.write(f"port = {port}\nlisten_addresses = '127.0.0.1'\n"
                       f"unix_socket_directories = '{self.dir}'\nmax_connections = 300\n"
                       "fsync = off\nfull_page_writes = off\nlogging_collector = off\n")

    def pg_ctl(self, *args):
        subprocess.run(_as_postgres([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-l",
                                     self.log, "-w", "-t", "60", *args]),
                       check=True, capture_output=True)

    def start(self):
        self.pg_ctl("start")
        return self

    def restart(self):
        """A fast restart: every session ends with an admin-shutdown error (57P01)."""
        self.pg_ctl("restart", "-m", "fast")

    def stop(self):
        try:
            self.pg_ctl("stop", "-m", "immediate")
        except subprocess.CalledProcessError:
            pass

    def destroy(self):
        self.thaw()
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def pids(self):
        """The postmaster and its children."""
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                master = int(f.readline())
        except (OSError, ValueError):
            return []
        children = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[1]) == master:
                children.append(int(entry))
        return [master, *children]

    def freeze(self):
        """SIGSTOPs the whole cluster: connections stay open, nothing answers."""
        self.frozen = self.pids()
        for pid in self.frozen:  # the postmaster first: it forks nothing new meanwhile
            os.kill(pid, signal.SIGSTOP)

    def thaw(self):
        for pid in reversed(getattr(self, "frozen", [])):
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.frozen = []

    def psql(self, db, sql):
        out = subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                              "-p", str(self.port), "-U", "postgres", "-d", db, "-c", sql],
                             check=True, capture_output=True, text=True, timeout=30).stdout
        return [line.split("|") for line in out.splitlines() if line]

    def terminate(self, db):
        """Ends every session of database db (pg_terminate_backend); returns how many."""
        rows = self.psql("postgres", "SELECT count(pg_terminate_backend(pid)) FROM "
                         f"pg_stat_activity WHERE datname = '{db}' AND pid <> pg_backend_pid()")
        return int(rows[0][0])

    def wait_accepting(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = subprocess.run([os.path.join(PG_BIN, "pg_isready"), "-h", "127.0.0.1", "-p",
                                str(self.port)], capture_output=True)
            if r.returncode == 0:
                return
            time.sleep(0.1)
        raise AssertionError(f"PostgreSQL on port {self.port} not ready within {timeout}s")
