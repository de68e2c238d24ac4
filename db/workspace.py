"""The workspace: one SQLite file holding datasets, votes, runs and the researcher's audit.

`Workspace` owns a single connection (the writer, in the sense of DESIGN.md) in autocommit
mode; every multi-row write goes through `transaction()`, so an error or a Ctrl-C leaves
nothing half-written. WAL mode lets readers (the TUI's worker threads, exports) read a
consistent snapshot while a background worker process writes, and `busy_timeout` makes
writers queue instead of failing with "database is locked".

This module knows tables and rows, not emotions: label validation is limited to "the label
is in the dataset's label set"; taxonomy, distributions and metrics live in `core/`.
"""

from __future__ import annotations

import math
import os
import sqlite3
import urllib.parse
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ambiscope.db import codec
from ambiscope.db.errors import WorkspaceError
from ambiscope.db.migrate import APPLICATION_ID, apply_migrations, latest_version
from ambiscope.db.models import (
    ANNOTATOR_KINDS,
    Annotator,
    Clip,
    ClipIn,
    Dataset,
    Prediction,
    Run,
    RunIn,
    Sample,
    VoteArrays,
    VoteIn,
    VoteRow,
)
from ambiscope.db.mounts import network_filesystem, network_fs_allowed

BUSY_TIMEOUT_MS = 30_000


@dataclass
class _TxState:
    depth: int = 0
    savepoints: list[str] = field(default_factory=list)


class Workspace:
    """An open ambiscope workspace (see module docstring)."""

    def __init__(self, conn: sqlite3.Connection, path: Path, *, readonly: bool = False) -> None:
        self.conn = conn
        self.path = path
        self.readonly = readonly
        self._tx = _TxState()
        self._dataset_cache: dict[int, Dataset] = {}

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        create: bool = False,
        readonly: bool = False,
        allow_network_fs: bool | None = None,
    ) -> Workspace:
        """Open (and with `create=True`, create or upgrade) the workspace at `path`.

        Raises WorkspaceError for a missing file (unless create), a file that is not
        SQLite, an SQLite file that is not an ambiscope workspace, a workspace written
        by a newer ambiscope, and opening for writing on a network file system unless
        `allow_network_fs` (default: this process's permission, `db.mounts`). A
        workspace this process cannot write (the file or its folder) opens read-only:
        reads work, writes raise "read-only workspace".
        """
        p = Path(path)
        if p.is_dir():
            raise WorkspaceError(f"{p}: is a directory, not a workspace file")
        exists = p.exists() and p.stat().st_size > 0
        readonly = readonly or (exists and not _writable(p))
        if not exists and not create:
            raise WorkspaceError(
                f"{p}: no workspace here; create one with `ambiscope init {p}` or `ambiscope demo`"
            )
        if not exists and readonly:
            raise WorkspaceError(f"{p}: cannot create a workspace in read-only mode")
        if not readonly:
            _refuse_network_fs(p, allow_network_fs)
        if not exists:
            p.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn, (app_id, version, n_tables) = _connect(p, readonly)
        except sqlite3.DatabaseError as exc:
            if exc.sqlite_errorname == "SQLITE_NOTADB":
                raise WorkspaceError(f"{p}: not an SQLite database ({exc})") from None
            raise WorkspaceError(f"{p}: cannot open the workspace ({exc})") from None
        try:
            cls._check_identity(p, app_id, version, n_tables)
            if not readonly:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
            if version < latest_version():
                if readonly:
                    raise WorkspaceError(
                        f"{p}: schema {version} needs an upgrade; open it once read-write"
                    )
                apply_migrations(conn)  # foreign keys off: a rebuilt table keeps its rows
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.OperationalError as exc:
            conn.close()
            raise WorkspaceError(f"{p}: cannot write the workspace ({exc})") from None
        except BaseException:
            conn.close()
            raise
        return cls(conn, p, readonly=readonly)

    @staticmethod
    def _check_identity(p: Path, app_id: int, version: int, n_tables: int) -> None:
        latest = latest_version()
        if app_id == 0 and version == 0 and n_tables == 0:
            return  # brand-new or empty SQLite file: ours to initialise
        if app_id != APPLICATION_ID:
            raise WorkspaceError(
                f"{p}: an SQLite database but not an ambiscope workspace "
                f"(application_id {app_id:#x}, {n_tables} tables); refusing to touch it"
            )
        if version > latest:
            raise WorkspaceError(
                f"{p}: written by a newer ambiscope (schema {version}, this version reads "
                f"up to {latest}); upgrade ambiscope to open it"
            )

    @property
    def schema_version(self) -> int:
        return self.conn.execute("PRAGMA user_version").fetchone()[0]

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------- transactions
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run a block atomically; nested blocks become savepoints.

        The outermost level takes the write lock up front (BEGIN IMMEDIATE) so a write
        never fails half-way with SQLITE_BUSY on lock upgrade.
        """
        tx = self._tx
        if tx.depth == 0:
            with self.write_errors():
                self.conn.execute("BEGIN IMMEDIATE")
        else:
            name = f"sp{tx.depth}"
            tx.savepoints.append(name)
            self.conn.execute(f"SAVEPOINT {name}")
        tx.depth += 1
        try:
            yield self.conn
        except BaseException as exc:
            tx.depth -= 1
            if tx.depth == 0:
                self._rollback()
                if isinstance(exc, sqlite3.OperationalError):
                    raise self._write_error(exc) from None
            else:
                name = tx.savepoints.pop()
                if self.conn.in_transaction:  # else SQLite rolled it all back (disk full)
                    self.conn.execute(f"ROLLBACK TO {name}")
                    self.conn.execute(f"RELEASE {name}")
            raise
        tx.depth -= 1
        if tx.depth == 0:
            try:
                self.conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                self._rollback()
                raise self._write_error(exc) from None
        else:
            self.conn.execute(f"RELEASE {tx.savepoints.pop()}")

    def _rollback(self) -> None:
        """Roll back the open transaction; SQLite may already have (disk full, I/O error)."""
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def _write_error(self, exc: sqlite3.OperationalError) -> Exception:
        """A full disk or a read-only file as one WorkspaceError line; other errors as-is."""
        name = exc.sqlite_errorname
        if name == "SQLITE_FULL":
            return WorkspaceError(f"disk full writing {self.path}: nothing was written")
        if name.startswith("SQLITE_READONLY"):
            return WorkspaceError(f"read-only workspace: {self.path}")
        return exc

    @contextmanager
    def write_errors(self) -> Iterator[None]:
        """Refuse writes on a read-only workspace; word disk-full and read-only failures."""
        if self.readonly:
            raise WorkspaceError(f"read-only workspace: {self.path}")
        try:
            yield
        except sqlite3.OperationalError as exc:
            raise self._write_error(exc) from None

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query inside sees the same consistent state."""
        if self._tx.depth:
            yield self.conn
            return
        self.conn.execute("BEGIN")
        try:
            yield self.conn
        finally:
            self.conn.execute("COMMIT")

    # ------------------------------------------------------------------ meta
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # --------------------------------------------------------------- datasets
    def add_dataset(
        self,
        name: str,
        format: str,
        label_set: Sequence[str],
        *,
        root: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> Dataset:
        """Create a dataset; its label set fixes the column order of all distributions."""
        if not name or not name.strip():
            raise WorkspaceError("dataset name must not be empty")
        labels = list(label_set)
        if not labels:
            raise WorkspaceError(f"dataset {name!r}: label set must not be empty")
        if len(set(labels)) != len(labels):
            raise WorkspaceError(f"dataset {name!r}: label set has duplicates: {labels}")
        try:
            cur = self.conn.execute(
                "INSERT INTO datasets (name, format, root, label_set, options) "
                "VALUES (?, ?, ?, ?, ?)",
                (name, format, root, codec.dumps(labels), codec.dumps(options or {})),
            )
        except sqlite3.IntegrityError:
            raise WorkspaceError(f"dataset {name!r} already exists") from None
        return self.get_dataset(int(cur.lastrowid or 0))

    def get_dataset(self, ref: int | str) -> Dataset:
        """A dataset by id or name; WorkspaceError naming the known ones if absent."""
        if isinstance(ref, int):
            row = self.conn.execute(
                f"SELECT {Dataset.COLUMNS} FROM datasets WHERE id = ?", (ref,)
            ).fetchone()
        else:
            row = self.conn.execute(
                f"SELECT {Dataset.COLUMNS} FROM datasets WHERE name = ?", (ref,)
            ).fetchone()
        if row is None:
            known = ", ".join(d.name for d in self.datasets()) or "none yet"
            raise WorkspaceError(f"no dataset {ref!r} in {self.path} (known: {known})")
        return Dataset.from_row(row)

    def find_dataset(self, name: str) -> Dataset | None:
        row = self.conn.execute(
            f"SELECT {Dataset.COLUMNS} FROM datasets WHERE name = ?", (name,)
        ).fetchone()
        return Dataset.from_row(row) if row else None

    def datasets(self) -> list[Dataset]:
        rows = self.conn.execute(f"SELECT {Dataset.COLUMNS} FROM datasets ORDER BY id")
        return [Dataset.from_row(r) for r in rows]

    def delete_dataset(self, ref: int | str) -> None:
        """Delete a dataset with all its clips, votes, runs and audit rows."""
        ds = self.get_dataset(ref)
        with self.transaction():
            self.conn.execute("DELETE FROM datasets WHERE id = ?", (ds.id,))

    def _bump_votes_version(self, dataset_id: int) -> None:
        self.conn.execute(
            "UPDATE datasets SET votes_version = votes_version + 1 WHERE id = ?", (dataset_id,)
        )

    # ------------------------------------------------------------------ clips
    def add_clips(self, dataset_id: int, clips: Iterable[ClipIn], *, replace: bool = False) -> int:
        """Insert clips in one transaction; existing keys are kept (or updated with replace).

        Returns the number of rows inserted or updated.
        """
        verb = (
            "ON CONFLICT (dataset_id, key) DO UPDATE SET path = excluded.path, "
            "duration = excluded.duration, sample_rate = excluded.sample_rate, "
            "speaker = excluded.speaker, gender = excluded.gender, split = excluded.split, "
            "transcript = excluded.transcript, intended_label = excluded.intended_label, "
            "meta = excluded.meta"
            if replace
            else "ON CONFLICT (dataset_id, key) DO NOTHING"
        )
        sql = (
            "INSERT INTO clips (dataset_id, key, path, duration, sample_rate, speaker, gender, "
            f"split, transcript, intended_label, meta) VALUES (?,?,?,?,?,?,?,?,?,?,?) {verb}"
        )
        rows = (
            (
                dataset_id,
                c.key,
                c.path,
                c.duration,
                c.sample_rate,
                c.speaker,
                c.gender,
                c.split,
                c.transcript,
                c.intended_label,
                codec.dumps(c.meta or {}),
            )
            for c in clips
        )
        with self.transaction():
            before = self.conn.total_changes
            self.conn.executemany(sql, rows)
            return self.conn.total_changes - before

    def clip_ids(self, dataset_id: int) -> dict[str, int]:
        """Map corpus keys to clip ids for one dataset (importers resolve votes with it)."""
        return dict(
            self.conn.execute("SELECT key, id FROM clips WHERE dataset_id = ?", (dataset_id,))
        )

    def get_clip(self, clip_id: int) -> Clip:
        row = self.conn.execute(f"SELECT {Clip.COLUMNS} FROM clips WHERE id = ?", (clip_id,))
        found = row.fetchone()
        if found is None:
            raise WorkspaceError(f"no clip with id {clip_id}")
        return Clip.from_row(found)

    def find_clip(self, dataset_id: int, key: str) -> Clip | None:
        row = self.conn.execute(
            f"SELECT {Clip.COLUMNS} FROM clips WHERE dataset_id = ? AND key = ?",
            (dataset_id, key),
        ).fetchone()
        return Clip.from_row(row) if row else None

    def clips(self, dataset_id: int, *, limit: int | None = None, offset: int = 0) -> list[Clip]:
        sql = f"SELECT {Clip.COLUMNS} FROM clips WHERE dataset_id = ? ORDER BY id"
        params: list[Any] = [dataset_id]
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params += [limit, offset]
        return [Clip.from_row(r) for r in self.conn.execute(sql, params)]

    def count_clips(self, dataset_id: int | None = None) -> int:
        if dataset_id is None:
            return self.conn.execute("SELECT count(*) FROM clips").fetchone()[0]
        return self.conn.execute(
            "SELECT count(*) FROM clips WHERE dataset_id = ?", (dataset_id,)
        ).fetchone()[0]

    # ------------------------------------------------------------- annotators
    def ensure_annotators(
        self,
        dataset_id: int,
        annotators: Iterable[tuple[str, str]],
        *,
        run_id: int | None = None,
    ) -> dict[str, int]:
        """Create missing annotators (external_id, kind) and return external_id -> id."""
        items = list(dict.fromkeys(annotators))
        for external_id, kind in items:
            if kind not in ANNOTATOR_KINDS:
                raise WorkspaceError(
                    f"annotator {external_id!r}: unknown kind {kind!r} "
                    f"(expected one of {', '.join(ANNOTATOR_KINDS)})"
                )
        with self.transaction():
            self.conn.executemany(
                "INSERT INTO annotators (dataset_id, external_id, kind, run_id) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (dataset_id, external_id) DO NOTHING",
                ((dataset_id, ext, kind, run_id) for ext, kind in items),
            )
            wanted = {ext for ext, _ in items}
            existing = self.conn.execute(
                "SELECT external_id, id, kind FROM annotators WHERE dataset_id = ?", (dataset_id,)
            ).fetchall()
        kinds = dict(items)
        out: dict[str, int] = {}
        for ext, ann_id, kind in existing:
            if ext in wanted:
                if kind != kinds[ext]:
                    raise WorkspaceError(
                        f"annotator {ext!r} already exists as kind {kind!r}, not {kinds[ext]!r}"
                    )
                out[ext] = ann_id
        return out

    def annotators(self, dataset_id: int) -> list[Annotator]:
        rows = self.conn.execute(
            f"SELECT {Annotator.COLUMNS} FROM annotators WHERE dataset_id = ? ORDER BY id",
            (dataset_id,),
        )
        return [Annotator.from_row(r) for r in rows]

    # ------------------------------------------------------------------ votes
    def add_votes(self, dataset_id: int, votes: Iterable[VoteIn]) -> int:
        """Insert or update votes in one transaction, validating label and weight.

        A vote is keyed by (clip, annotator, label): re-importing the same votes is
        idempotent. Bumps the dataset's votes_version so cached human distributions are
        known to be stale. Returns the number of votes written.
        """
        return self.add_vote_rows(
            dataset_id,
            ((v.clip_id, v.annotator_id, v.label, v.rank, v.weight, v.raw_label) for v in votes),
        )

    def add_vote_rows(
        self, dataset_id: int, rows: Iterable[tuple[Any, ...]], *, bump: bool = True
    ) -> int:
        """`add_votes` for plain (clip_id, annotator_id, label, rank, weight, raw_label)
        tuples: the bulk path importers use for a million votes without an object each.

        `bump=False` leaves votes_version alone: for synthetic votes, which the cached
        human reference (kind `human` by default) does not pool, so a running synthetic
        job does not make every reader recompute the human cache after each clip.
        """
        labels = frozenset(self.get_dataset(dataset_id).label_set)
        count = 0

        def checked() -> Iterator[tuple[Any, ...]]:
            nonlocal count
            for row in rows:
                clip_id, _, label, rank, weight, _ = row
                if label not in labels:
                    raise WorkspaceError(
                        f"vote on clip {clip_id}: label {label!r} is not in the dataset's "
                        f"label set ({', '.join(sorted(labels))})"
                    )
                if not isinstance(weight, int | float) or not 0 <= weight < math.inf:
                    raise WorkspaceError(
                        f"vote on clip {clip_id}: weight must be a finite number >= 0, "
                        f"got {weight!r}"
                    )
                if rank < 0:
                    raise WorkspaceError(f"vote on clip {clip_id}: rank must be >= 0")
                count += 1
                yield row

        with self.transaction():
            self.conn.executemany(
                "INSERT INTO votes (clip_id, annotator_id, label, rank, weight, raw_label) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (clip_id, annotator_id, label) "
                "DO UPDATE SET rank = excluded.rank, weight = excluded.weight, "
                "raw_label = excluded.raw_label",
                checked(),
            )
            if bump:
                self._bump_votes_version(dataset_id)
        return count

    def replace_clip_votes(
        self, clip_id: int, annotator_id: int, new_votes: Sequence[VoteIn]
    ) -> list[VoteRow]:
        """Replace one annotator's votes on one clip (e.g. the researcher's own vote).

        Returns the votes that were there before, so the caller can undo.
        """
        clip = self.get_clip(clip_id)
        before = [v for v in self.clip_votes(clip_id) if v.annotator_id == annotator_id]
        with self.transaction():
            self.conn.execute(
                "DELETE FROM votes WHERE clip_id = ? AND annotator_id = ?", (clip_id, annotator_id)
            )
            if new_votes:
                self.add_votes(clip.dataset_id, new_votes)
            else:
                self._bump_votes_version(clip.dataset_id)
        return before

    def clip_votes(self, clip_id: int) -> list[VoteRow]:
        """All votes on a clip with their annotator's kind, ordered by annotator then rank."""
        rows = self.conn.execute(
            "SELECT v.clip_id, v.annotator_id, a.external_id, a.kind, v.label, v.rank, "
            "v.weight, v.raw_label FROM votes v JOIN annotators a ON a.id = v.annotator_id "
            "WHERE v.clip_id = ? ORDER BY a.kind, a.external_id, v.rank",
            (clip_id,),
        )
        return [VoteRow(*r) for r in rows]

    def count_votes(self, dataset_id: int) -> int:
        """Vote ROWS of the dataset (an anonymous crowd's weighted row counts once)."""
        return self.conn.execute(
            "SELECT count(*) FROM votes v JOIN clips c ON c.id = v.clip_id WHERE c.dataset_id = ?",
            (dataset_id,),
        ).fetchone()[0]

    def vote_weight(self, dataset_id: int) -> float:
        """Votes of the dataset counted by weight ("3 raters said sad" is 3 votes)."""
        return self.conn.execute(
            "SELECT total(v.weight) FROM votes v JOIN clips c ON c.id = v.clip_id "
            "WHERE c.dataset_id = ?",
            (dataset_id,),
        ).fetchone()[0]

    def vote_arrays(self, dataset_id: int, kinds: Sequence[str] = ("human",)) -> VoteArrays:
        """All votes of the given annotator kinds as flat numpy arrays.

        Labels come back as indices into the dataset's label set, computed in SQL with a
        temporary mapping table so a million votes never pass through Python strings.
        """
        ds = self.get_dataset(dataset_id)
        for kind in kinds:
            if kind not in ANNOTATOR_KINDS:
                raise WorkspaceError(f"unknown annotator kind {kind!r}")
        marks = ",".join("?" * len(kinds))
        label_case = " ".join(f"WHEN ? THEN {i}" for i in range(len(ds.label_set)))
        sql = (
            f"SELECT v.clip_id, CASE v.label {label_case} ELSE -1 END, v.weight, v.rank, "
            "v.annotator_id FROM votes v JOIN clips c ON c.id = v.clip_id "
            "JOIN annotators a ON a.id = v.annotator_id "
            f"WHERE c.dataset_id = ? AND a.kind IN ({marks})"
        )
        rows = self.conn.execute(sql, [*ds.label_set, dataset_id, *kinds]).fetchall()
        if not rows:
            empty_i = np.zeros(0, dtype=np.int64)
            return VoteArrays(empty_i, empty_i.copy(), np.zeros(0), empty_i.copy(), empty_i.copy())
        arr = np.array(rows, dtype=np.float64)
        return VoteArrays(
            clip_id=arr[:, 0].astype(np.int64),
            label_idx=arr[:, 1].astype(np.int64),
            weight=arr[:, 2],
            rank=arr[:, 3].astype(np.int64),
            annotator_id=arr[:, 4].astype(np.int64),
        )

    # ------------------------------------------------------------ human cache
    def write_human_cache(
        self,
        dataset_id: int,
        rows: Iterable[tuple[Any, ...]],
        *,
        options: dict[str, Any],
        votes_version: int,
        cuts: dict[str, Any],
        agreement: dict[str, Any],
    ) -> None:
        """Replace a dataset's cached human distributions in one transaction.

        Each row: (clip_id, blob|None, n_votes, n_raters, majority, is_tie, entropy,
        norm_entropy, ambiguity).
        """
        with self.transaction():
            self.conn.execute("DELETE FROM human_dist WHERE dataset_id = ?", (dataset_id,))
            self.conn.executemany(
                "INSERT INTO human_dist (clip_id, dataset_id, distribution, n_votes, n_raters, "
                "majority, is_tie, entropy, norm_entropy, ambiguity) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                ((r[0], dataset_id, *r[1:]) for r in rows),
            )
            self.conn.execute(
                "INSERT INTO human_state (dataset_id, options, votes_version, cuts, agreement) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (dataset_id) DO UPDATE SET "
                "options = excluded.options, votes_version = excluded.votes_version, "
                "cuts = excluded.cuts, agreement = excluded.agreement, "
                "computed_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
                (
                    dataset_id,
                    codec.dumps(options),
                    votes_version,
                    codec.dumps(cuts),
                    codec.dumps(agreement),
                ),
            )

    def human_state(self, dataset_id: int) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT options, votes_version, cuts, agreement, computed_at FROM human_state "
            "WHERE dataset_id = ?",
            (dataset_id,),
        ).fetchone()
        if row is None:
            return None
        return {
            "options": codec.loads(row[0], {}),
            "votes_version": row[1],
            "cuts": codec.loads(row[2], {}),
            "agreement": codec.loads(row[3], {}),
            "computed_at": row[4],
        }

    def human_rows(self, dataset_id: int) -> list[tuple[Any, ...]]:
        """Cached rows: (clip_id, blob, n_votes, n_raters, majority, is_tie, entropy,
        norm_entropy, ambiguity), ordered by clip id."""
        return self.conn.execute(
            "SELECT clip_id, distribution, n_votes, n_raters, majority, is_tie, entropy, "
            "norm_entropy, ambiguity FROM human_dist WHERE dataset_id = ? ORDER BY clip_id",
            (dataset_id,),
        ).fetchall()

    # ------------------------------------------------------------------- runs
    def add_run(self, run: RunIn) -> Run:
        cur = self.conn.execute(
            "INSERT INTO runs (dataset_id, name, model, revision, backend, prompt_template, "
            "prompt_text, mode, n, temperature, top_p, search, seed, verifier, config) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                run.dataset_id,
                run.name,
                run.model,
                run.revision,
                run.backend,
                run.prompt_template,
                run.prompt_text,
                run.mode,
                run.n,
                run.temperature,
                run.top_p,
                run.search,
                run.seed,
                run.verifier,
                codec.dumps(run.config),
            ),
        )
        return self.get_run(int(cur.lastrowid or 0))

    def get_run(self, run_id: int) -> Run:
        row = self.conn.execute(f"SELECT {Run.COLUMNS} FROM runs WHERE id = ?", (run_id,))
        found = row.fetchone()
        if found is None:
            raise WorkspaceError(f"no run with id {run_id}")
        return Run.from_row(found)

    def runs(self, dataset_id: int | None = None) -> list[Run]:
        if dataset_id is None:
            rows = self.conn.execute(f"SELECT {Run.COLUMNS} FROM runs ORDER BY id")
        else:
            rows = self.conn.execute(
                f"SELECT {Run.COLUMNS} FROM runs WHERE dataset_id = ? ORDER BY id", (dataset_id,)
            )
        return [Run.from_row(r) for r in rows]

    # ---------------------------------------------------------------- samples
    def add_samples(self, samples: Iterable[Sample]) -> None:
        """Write candidates (one clip's worth per call, by convention) in one transaction."""
        with self.transaction():
            self.conn.executemany(
                "INSERT INTO samples (run_id, clip_id, idx, raw_text, label, distribution, "
                "logprob, logprob_norm, n_tokens, verifier_score, valid, error) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (run_id, clip_id, idx) DO UPDATE "
                "SET raw_text = excluded.raw_text, label = excluded.label, "
                "distribution = excluded.distribution, logprob = excluded.logprob, "
                "logprob_norm = excluded.logprob_norm, n_tokens = excluded.n_tokens, "
                "verifier_score = excluded.verifier_score, valid = excluded.valid, "
                "error = excluded.error",
                (s.to_row() for s in samples),
            )

    def samples(self, run_id: int, clip_id: int | None = None) -> list[Sample]:
        sql = f"SELECT {Sample.COLUMNS} FROM samples WHERE run_id = ?"
        params: list[Any] = [run_id]
        if clip_id is not None:
            sql += " AND clip_id = ?"
            params.append(clip_id)
        sql += " ORDER BY clip_id, idx"
        return [Sample.from_row(r) for r in self.conn.execute(sql, params)]

    def sampled_clip_ids(self, run_id: int) -> set[int]:
        """Clips that already have candidates in a run (a rerun resumes after them)."""
        return {
            r[0]
            for r in self.conn.execute(
                "SELECT DISTINCT clip_id FROM samples WHERE run_id = ?", (run_id,)
            )
        }

    # -------------------------------------------------------------- run clips
    def set_run_clip(
        self,
        run_id: int,
        clip_id: int,
        status: str,
        *,
        error: str | None = None,
        warnings: Sequence[str] = (),
        label_loglik: bytes | None = None,
        seconds: float | None = None,
        model_seconds: float | None = None,
    ) -> None:
        """Record a clip's outcome in a run (done, or failed with the reason)."""
        self.conn.execute(
            "INSERT INTO run_clips (run_id, clip_id, status, error, warnings, label_loglik, "
            "seconds, model_seconds) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (run_id, clip_id) "
            "DO UPDATE SET status = excluded.status, error = excluded.error, "
            "warnings = excluded.warnings, label_loglik = excluded.label_loglik, "
            "seconds = excluded.seconds, model_seconds = excluded.model_seconds, "
            "updated_at = (julianday('now') - 2440587.5) * 86400.0",
            (
                run_id,
                clip_id,
                status,
                error,
                codec.dumps(list(warnings)),
                label_loglik,
                seconds,
                model_seconds,
            ),
        )

    def run_clip_ids(self, run_id: int, status: str | None = None) -> set[int]:
        sql = "SELECT clip_id FROM run_clips WHERE run_id = ?"
        params: list[Any] = [run_id]
        if status is not None:
            sql += " AND status = ?"
            params.append(status)
        return {r[0] for r in self.conn.execute(sql, params)}

    def run_clip_rows(self, run_id: int) -> list[tuple[Any, ...]]:
        """(clip_id, status, error, warnings JSON, label_loglik blob, seconds, model_seconds)."""
        return self.conn.execute(
            "SELECT clip_id, status, error, warnings, label_loglik, seconds, model_seconds "
            "FROM run_clips WHERE run_id = ? ORDER BY clip_id",
            (run_id,),
        ).fetchall()

    # ------------------------------------------------------------ predictions
    def add_predictions(self, predictions: Iterable[Prediction]) -> None:
        with self.transaction():
            self.conn.executemany(
                "INSERT INTO predictions (run_id, strategy, clip_id, distribution, label, "
                "entropy, js, bc, agree) VALUES (?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (run_id, strategy, clip_id) DO UPDATE SET "
                "distribution = excluded.distribution, label = excluded.label, "
                "entropy = excluded.entropy, js = excluded.js, bc = excluded.bc, "
                "agree = excluded.agree",
                (
                    (
                        p.run_id,
                        p.strategy,
                        p.clip_id,
                        codec.encode_dist(p.distribution),
                        p.label,
                        p.entropy,
                        p.js,
                        p.bc,
                        None if p.agree is None else int(p.agree),
                    )
                    for p in predictions
                ),
            )

    def update_prediction_scores(
        self, rows: Iterable[tuple[float | None, float | None, int | None, int, str, int]]
    ) -> None:
        """Set (js, bc, agree) for (run_id, strategy, clip_id) rows in one transaction."""
        with self.transaction():
            self.conn.executemany(
                "UPDATE predictions SET js = ?, bc = ?, agree = ? "
                "WHERE run_id = ? AND strategy = ? AND clip_id = ?",
                rows,
            )

    def prediction_arrays(
        self, run_id: int, strategy: str, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(clip_ids, (n, k) distributions) of one run's strategy, ordered by clip id."""
        rows = self.conn.execute(
            "SELECT clip_id, distribution FROM predictions WHERE run_id = ? AND strategy = ? "
            "ORDER BY clip_id",
            (run_id, strategy),
        ).fetchall()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        return ids, codec.decode_many((r[1] for r in rows), k)

    def strategies(self, run_id: int) -> list[str]:
        return [
            r[0]
            for r in self.conn.execute(
                "SELECT DISTINCT strategy FROM predictions WHERE run_id = ? ORDER BY strategy",
                (run_id,),
            )
        ]

    # ------------------------------------------------------ flags, tags, notes
    def set_flag(self, clip_id: int, name: str, on: bool, *, author: str = "") -> bool:
        """Set or clear a flag; returns whether the flag was set before (for undo)."""
        with self.transaction():
            was = self._exists("SELECT 1 FROM flags WHERE clip_id = ? AND name = ?", clip_id, name)
            if on:
                self.conn.execute(
                    "INSERT OR IGNORE INTO flags (clip_id, name, author) VALUES (?, ?, ?)",
                    (clip_id, name, author),
                )
            else:
                self.conn.execute(
                    "DELETE FROM flags WHERE clip_id = ? AND name = ?", (clip_id, name)
                )
        return was

    def flags(self, clip_id: int) -> list[str]:
        return self._names("SELECT name FROM flags WHERE clip_id = ? ORDER BY name", clip_id)

    def set_tag(self, clip_id: int, name: str, on: bool, *, author: str = "") -> bool:
        """Add or remove a tag; returns whether the tag was present before (for undo)."""
        name = name.strip()
        if not name:
            raise WorkspaceError("tag name must not be empty")
        with self.transaction():
            was = self._exists("SELECT 1 FROM tags WHERE clip_id = ? AND name = ?", clip_id, name)
            if on:
                self.conn.execute(
                    "INSERT OR IGNORE INTO tags (clip_id, name, author) VALUES (?, ?, ?)",
                    (clip_id, name, author),
                )
            else:
                self.conn.execute(
                    "DELETE FROM tags WHERE clip_id = ? AND name = ?", (clip_id, name)
                )
        return was

    def tags(self, clip_id: int) -> list[str]:
        return self._names("SELECT name FROM tags WHERE clip_id = ? ORDER BY name", clip_id)

    def tag_names(self) -> list[str]:
        """Every tag used in the workspace (for completion)."""
        return [r[0] for r in self.conn.execute("SELECT DISTINCT name FROM tags ORDER BY name")]

    def bulk_set(
        self, table: str, clip_ids: Sequence[int], name: str, on: bool, *, author: str = ""
    ) -> int:
        """Apply or clear a flag/tag on many clips in one transaction; returns rows changed.

        New rows carry `author`, as `set_flag` / `set_tag` do for one clip."""
        if table not in ("flags", "tags"):
            raise ValueError(f"bulk_set works on flags or tags, not {table!r}")
        with self.transaction():
            before = self.conn.total_changes
            if on:
                self.conn.executemany(
                    f"INSERT OR IGNORE INTO {table} (clip_id, name, author) VALUES (?, ?, ?)",
                    ((cid, name, author) for cid in clip_ids),
                )
            else:
                self.conn.executemany(
                    f"DELETE FROM {table} WHERE clip_id = ? AND name = ?",
                    ((cid, name) for cid in clip_ids),
                )
            return self.conn.total_changes - before

    def set_note(self, clip_id: int, body: str, *, author: str = "") -> str | None:
        """Set (or with empty body, delete) a note; returns the previous body."""
        with self.transaction():
            previous = self.get_note(clip_id, author=author)
            if body.strip():
                self.conn.execute(
                    "INSERT INTO notes (clip_id, author, body) VALUES (?, ?, ?) "
                    "ON CONFLICT (clip_id, author) DO UPDATE SET body = excluded.body, "
                    "updated_at = (julianday('now') - 2440587.5) * 86400.0",
                    (clip_id, author, body),
                )
            else:
                self.conn.execute(
                    "DELETE FROM notes WHERE clip_id = ? AND author = ?", (clip_id, author)
                )
        return previous

    def get_note(self, clip_id: int, *, author: str = "") -> str | None:
        row = self.conn.execute(
            "SELECT body FROM notes WHERE clip_id = ? AND author = ?", (clip_id, author)
        ).fetchone()
        return row[0] if row else None

    # ---------------------------------------------------------------- helpers
    def _exists(self, sql: str, *params: Any) -> bool:
        return self.conn.execute(sql, params).fetchone() is not None

    def _names(self, sql: str, *params: Any) -> list[str]:
        return [r[0] for r in self.conn.execute(sql, params)]

    def table_counts(self) -> dict[str, int]:
        """Row counts of every table (for `ambiscope stats` and tests)."""
        tables = self._names("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {
            name: self.conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
            for name in tables
        }

    # ------------------------------------------------------ reliability fits
    def write_reliability_fit(
        self,
        dataset_id: int,
        model: str,
        *,
        settings: dict[str, Any],
        votes_version: int,
        summary: dict[str, Any],
        shift_cut: float,
        raters: Iterable[tuple[int, int, float, bytes]],
        posteriors: Iterable[tuple[int, bytes, float]],
    ) -> int:
        """Replace a dataset's fit of `model` in one transaction; returns the fit id.

        raters: (annotator_id, n_votes, reliability, confusion blob); posteriors:
        (clip_id, distribution blob, shift). The old fit's rows go with it (cascade), so a
        reader sees the previous fit or the new one, never a mix.
        """
        with self.transaction():
            self.conn.execute(
                "DELETE FROM reliability_fits WHERE dataset_id = ? AND model = ?",
                (dataset_id, model),
            )
            cur = self.conn.execute(
                "INSERT INTO reliability_fits (dataset_id, model, settings, votes_version, "
                "summary, shift_cut) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    dataset_id,
                    model,
                    codec.dumps(settings),
                    votes_version,
                    codec.dumps(summary),
                    shift_cut,
                ),
            )
            fit_id = int(cur.lastrowid or 0)
            self.conn.executemany(
                "INSERT INTO reliability_raters (fit_id, annotator_id, n_votes, reliability, "
                "confusion) VALUES (?, ?, ?, ?, ?)",
                ((fit_id, *row) for row in raters),
            )
            self.conn.executemany(
                "INSERT INTO reliability_posteriors (fit_id, clip_id, distribution, shift) "
                "VALUES (?, ?, ?, ?)",
                ((fit_id, *row) for row in posteriors),
            )
        return fit_id

    def reliability_fit(self, dataset_id: int, model: str) -> dict[str, Any] | None:
        """A dataset's stored fit of `model` (id, model, settings, votes_version, summary,
        shift_cut, fitted_at), or None."""
        row = self.conn.execute(
            "SELECT id, model, settings, votes_version, summary, shift_cut, fitted_at "
            "FROM reliability_fits WHERE dataset_id = ? AND model = ?",
            (dataset_id, model),
        ).fetchone()
        if row is None:
            return None
        return {
            "id": row[0],
            "model": row[1],
            "settings": codec.loads(row[2], {}),
            "votes_version": row[3],
            "summary": codec.loads(row[4], {}),
            "shift_cut": row[5],
            "fitted_at": row[6],
        }

    def reliability_raters(self, fit_id: int) -> list[tuple[Any, ...]]:
        """A fit's raters: (annotator_id, n_votes, reliability, confusion blob) by id."""
        return self.conn.execute(
            "SELECT annotator_id, n_votes, reliability, confusion FROM reliability_raters "
            "WHERE fit_id = ? ORDER BY annotator_id",
            (fit_id,),
        ).fetchall()

    def reliability_posteriors(self, fit_id: int) -> list[tuple[Any, ...]]:
        """A fit's clips: (clip_id, distribution blob, shift) ordered by clip id."""
        return self.conn.execute(
            "SELECT clip_id, distribution, shift FROM reliability_posteriors "
            "WHERE fit_id = ? ORDER BY clip_id",
            (fit_id,),
        ).fetchall()


def _refuse_network_fs(p: Path, allow: bool | None) -> None:
    """Refuse to write a workspace on NFS/SMB/SSHFS/... unless allowed (`db/mounts.py`).

    Checked before anything is created or connected, so a refused open leaves no file.
    """
    if allow or (allow is None and network_fs_allowed()):
        return
    mount = network_filesystem(p)
    if mount is not None:
        raise WorkspaceError(
            f"{p}: on a network file system ({mount.fstype} at {mount.mount_point}); "
            "SQLite's WAL needs shared memory on one host and network file systems break "
            "its locking, so two machines writing one workspace corrupt it: keep it on a "
            "local disk (to spread runs over machines use --ray, which keeps the workspace "
            "on the driver's local disk), or pass --allow-network-fs "
            "(AMBISCOPE_ALLOW_NETWORK_FS=1) if only one machine ever writes it"
        )


def _writable(path: Path) -> bool:
    """Whether this process may write the workspace file and create its WAL files."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def _connect(p: Path, readonly: bool) -> tuple[sqlite3.Connection, tuple[int, int, int]]:
    """Connect and read (application_id, user_version, table count).

    Read-only, a WAL workspace in a folder we cannot write may have no `-shm` file to
    share; SQLite then cannot open it read-only, so it is opened as immutable instead.
    """
    uri = f"file:{urllib.parse.quote(str(p.resolve()))}?mode=ro"
    try:
        return _identity(p, uri if readonly else None)
    except sqlite3.OperationalError:
        if not readonly:
            raise
        return _identity(p, uri + "&immutable=1")


def _identity(p: Path, uri: str | None) -> tuple[sqlite3.Connection, tuple[int, int, int]]:
    if uri is None:
        conn = sqlite3.connect(p, isolation_level=None, check_same_thread=False)
    else:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        # 64 MiB page cache: bulk vote inserts hit the annotator index in random order
        conn.execute("PRAGMA cache_size = -65536")
        # memory-mapped reads: short-lived reader connections (the TUI's worker
        # threads) share the OS page cache instead of re-reading pages cold
        conn.execute("PRAGMA mmap_size = 268435456")
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        n_tables = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
        ).fetchone()[0]
    except BaseException:
        conn.close()
        raise
    return conn, (app_id, version, n_tables)
