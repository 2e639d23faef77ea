"""SQLite-backed object store with an in-memory copy and per-request transactions.

Reads come from memory. A transaction records the original of every object it touches; on
success the touched rows are written to SQLite in one transaction (WAL) before the response
goes out, so an acknowledged change survives kill -9; on error the originals are restored, so
a rejected request changes nothing.
"""
from __future__ import annotations

import copy
import json
import sqlite3
from contextlib import contextmanager
from pathlib import Path

_MISSING = object()


class Store:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(
            """
            CREATE TABLE IF NOT EXISTS objects (kind TEXT, id INTEGER, data TEXT, PRIMARY KEY (kind, id));
            CREATE TABLE IF NOT EXISTS counters (kind TEXT PRIMARY KEY, next INTEGER);
            CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT);
            """
        )
        self.data: dict[str, dict[int, dict]] = {}
        for kind, oid, data in self.db.execute("SELECT kind, id, data FROM objects"):
            self.data.setdefault(kind, {})[oid] = json.loads(data)
        self.counters = dict(self.db.execute("SELECT kind, next FROM counters"))
        self._undo: dict[tuple[str, int], object] | None = None
        self.committed_kinds: set[str] = set()      # kinds the last commits wrote (for after-commit syncs)
        self._counter_undo: dict[str, object] = {}

    @property
    def active(self) -> bool:
        """True inside a transaction."""
        return self._undo is not None

    # --- reads
    def get(self, kind: str, oid: int) -> dict | None:
        return self.data.get(kind, {}).get(oid)

    def all(self, kind: str):
        return self.data.get(kind, {}).values()

    def kv_get(self, key: str):
        row = self.db.execute("SELECT value FROM kv WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def kv_set(self, key: str, value) -> None:
        self.db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    # --- writes (only inside a transaction)
    def _remember(self, kind: str, oid: int) -> None:
        assert self._undo is not None, "store writes need a transaction"
        key = (kind, oid)
        if key not in self._undo:
            current = self.data.get(kind, {}).get(oid, _MISSING)
            self._undo[key] = current if current is _MISSING else copy.deepcopy(current)

    def edit(self, kind: str, oid: int) -> dict:
        """The live object, remembered for rollback: mutate it freely inside the transaction."""
        self._remember(kind, oid)
        return self.data[kind][oid]

    def put(self, kind: str, obj: dict) -> dict:
        self._remember(kind, obj["id"])
        self.data.setdefault(kind, {})[obj["id"]] = obj
        return obj

    def delete(self, kind: str, oid: int) -> None:
        self._remember(kind, oid)
        self.data.get(kind, {}).pop(oid, None)

    def next_id(self, kind: str, start: int = 1) -> int:
        assert self._undo is not None, "store writes need a transaction"
        if kind not in self._counter_undo:
            self._counter_undo[kind] = self.counters.get(kind, _MISSING)
        value = self.counters.get(kind, start)
        self.counters[kind] = value + 1
        return value

    @contextmanager
    def transaction(self):
        if self._undo is not None:        # nested: the outer transaction owns commit/rollback
            yield
            return
        self._undo, self._counter_undo = {}, {}
        try:
            yield
        except BaseException:
            self._rollback()
            raise
        else:
            self._commit()
        finally:
            self._undo, self._counter_undo = None, {}

    def _rollback(self) -> None:
        for (kind, oid), original in self._undo.items():
            if original is _MISSING:
                self.data.get(kind, {}).pop(oid, None)
            else:
                self.data.setdefault(kind, {})[oid] = original
        for kind, original in self._counter_undo.items():
            if original is _MISSING:
                self.counters.pop(kind, None)
            else:
                self.counters[kind] = original

    def _commit(self) -> None:
        if not self._undo and not self._counter_undo:
            return
        rows, gone = [], []
        self.committed_kinds |= {kind for kind, _ in self._undo}
        for kind, oid in self._undo:
            obj = self.data.get(kind, {}).get(oid)
            if obj is None:
                gone.append((kind, oid))
            else:
                rows.append((kind, oid, json.dumps(obj, separators=(",", ":"))))
        self.db.execute("BEGIN")
        try:
            if rows:
                self.db.executemany("INSERT OR REPLACE INTO objects (kind, id, data) VALUES (?, ?, ?)", rows)
            if gone:
                self.db.executemany("DELETE FROM objects WHERE kind=? AND id=?", gone)
            if self._counter_undo:
                self.db.executemany(
                    "INSERT OR REPLACE INTO counters (kind, next) VALUES (?, ?)",
                    [(kind, self.counters[kind]) for kind in self._counter_undo],
                )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            self._rollback()
            raise

    def close(self) -> None:
        self.db.close()
