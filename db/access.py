"""Shared access to one workspace from many threads: a reader pool and one writer.

An interactive front end reads from thread workers all the time (pages, details, job
polls) while a background worker process writes samples. A connection is never used by
two threads at once: every read takes a read-only connection from a small pool
(`reader()`) and gives it back, so reads keep a warm page cache without sharing a
connection. Writes go through `writer()`, which serialises the process's own writes with
a lock (one writer) and relies on WAL + busy_timeout to queue behind the worker process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ambiscope.db.workspace import Workspace


class WorkspaceAccess:
    """Read-only connections from a small pool, one writer at a time (module docstring)."""

    MAX_IDLE_READERS = 4

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._write_lock = threading.Lock()
        self._schema_checked = False
        self.readonly = False  # known after ensure_schema(): the file cannot be written
        self._idle: list[Workspace] = []
        self._pool_lock = threading.Lock()
        self._closed = False

    def ensure_schema(self) -> None:
        """Open for writing once so pending migrations are applied before read-only use;
        a file this process cannot write opens read-only instead (`readonly` says so)."""
        if not self._schema_checked:
            with self.writer() as ws:
                self.readonly = ws.readonly
            self._schema_checked = True

    @contextmanager
    def reader(self) -> Iterator[Workspace]:
        """A read-only workspace for this block, used by one thread at a time.

        Connections are kept between calls (at most MAX_IDLE_READERS idle ones): a fresh
        connection starts with an empty page cache and schema, which made every detail
        read and page fetch re-read the same pages. A connection in autocommit mode holds
        no snapshot between statements, so a reused one sees every committed write.
        """
        with self._pool_lock:
            ws = self._idle.pop() if self._idle else None
        if ws is None:
            ws = Workspace.open(self.path, readonly=True)
        try:
            yield ws
        finally:
            self._release(ws)

    def _release(self, ws: Workspace) -> None:
        if not ws.conn.in_transaction:
            with self._pool_lock:
                if not self._closed and len(self._idle) < self.MAX_IDLE_READERS:
                    self._idle.append(ws)
                    return
        ws.close()

    def close(self) -> None:
        """Close the idle readers (readers in use close when they are given back)."""
        with self._pool_lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for ws in idle:
            ws.close()

    @contextmanager
    def writer(self) -> Iterator[Workspace]:
        with self._write_lock:
            ws = Workspace.open(self.path)
            try:
                yield ws
            finally:
                ws.close()
