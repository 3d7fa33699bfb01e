"""Merging a data directory's segments: now, or in a background process.

An ingest commits its new segment and returns; when that leaves too many segments (or one mostly
dead) it starts ``python -m embeddings.storage.compact DATA_DIR``, which merges under the merge
lock only (see :mod:`embeddings.storage.store`). A separate process rather than a thread: a merge
of a million passages spends minutes in numpy and faiss, and in the serving process it would
compete for the interpreter lock with the answers; as its own process it runs at a lower CPU
priority, and a command-line ingest can exit while it goes on.
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar
from pathlib import Path

import embeddings
from embeddings.storage.store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")

# Merges per run at most (each merges up to MERGE_WIDTH segments); what is left waits for the next.
MAX_ROUNDS = 8
# The merging process's nice value: answers and ingests on a shared machine go first.
NICENESS = 10
LOG_NAME = "merge.log"
WAIT_LOCK = "merge-wait.lock"


def merge_segments(store: Store) -> int:
    """Drop segments with nothing live and merge while there are candidates, in this process (after
    a merge running elsewhere); returns merges done. Holds the merge lock, never the writers' lock."""
    with store.merge_lock():
        return _merge_locked(store, None)


def _merge_locked(store: Store, run: Callable[[Callable[[], T]], T] | None) -> int:
    store.clean_merge_leftovers()
    store.drop_empty()
    done = 0
    for _ in range(MAX_ROUNDS):
        numbers = store.merge_candidates()
        if not numbers or store.merge(numbers, run=run) is None:
            break
        done += 1
    return done


def _idle() -> None:
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        pass  # not Linux: nice alone


def at_idle_priority(work: Callable[[], T]) -> T:
    """``work()`` on a thread of its own at the lowest CPU priority (Linux SCHED_IDLE: it runs only
    when nothing else wants the CPU). A thread, because the policy is per thread and an unprivileged
    one may not return from it: the database transactions stay on the caller's thread, at nice 10,
    since a starved holder of SQLite's write lock would make every ingest wait."""
    with ThreadPoolExecutor(max_workers=1, initializer=_idle, thread_name_prefix="bron-merge") as pool:
        return pool.submit(work).result()


class BackgroundMerges:
    """Starts the merging process for one data directory, one at a time from this process."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._process: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def start(self) -> bool:
        """Start a merging process unless this process's previous one still runs; True when started."""
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                return False
            root = str(Path(embeddings.__file__).resolve().parents[1])
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
            with open(self.data_dir / LOG_NAME, "ab") as errors:
                self._process = subprocess.Popen(
                    [sys.executable, "-m", "embeddings.storage.compact", str(self.data_dir.resolve())],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors, env=env,
                    # From this package's folder: ``-m`` looks in the working directory first, which
                    # could hold another checkout of Bron.
                    cwd=root,
                    # Its own session: a Ctrl-C meant for the command that started it does not stop it.
                    start_new_session=True,
                )
            # Reaped as soon as it ends, so a bot that runs for months leaves no zombies.
            threading.Thread(target=self._process.wait, name="bron-merge-reaper", daemon=True).start()
            log.info("merging segments of %s in the background (pid %d)", self.data_dir, self._process.pid)
            return True

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for this process's merging process; True when none is running any more."""
        process = self._process
        if process is None:
            return True
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True


def main(argv: list[str] | None = None) -> int:
    """``python -m embeddings.storage.compact DATA_DIR``: merge that data directory's segments."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m embeddings.storage.compact DATA_DIR", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    try:
        os.nice(NICENESS)
    except OSError:
        pass
    data_dir = Path(args[0])
    if not Store.exists(data_dir):
        log.warning("%s holds no library; nothing to merge", data_dir)
        return 1
    try:
        # At most one merging process waits for the merge lock: ingests during a long merge each
        # start one, and the merge in progress picks up their segments in its next round anyway.
        with open(data_dir / WAIT_LOCK, "w") as waiting:
            try:
                fcntl.flock(waiting, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0
            store = Store(data_dir)
            with store.merge_lock():
                fcntl.flock(waiting, fcntl.LOCK_UN)
                _merge_locked(store, at_idle_priority)
    except Exception as err:  # noqa: BLE001 - whatever it is, the index is unchanged: say so in merge.log
        log.warning("merging segments in %s failed: %s; the index is unchanged", data_dir, getattr(err, "reason", err))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
