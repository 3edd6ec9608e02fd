"""The plumbing of ``SqliteStore``: the one connection on its one worker thread,
transactions (a uniqueness violation is a ``ConflictError``) and the record reads every
part of the store is built on. See ``sqlite`` for durability.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from .models import from_dict, to_dict
from .sqlite_schema import connect
from .store import ConflictError

__all__ = ["SqliteStoreBase", "dumps", "load", "loads"]

T = TypeVar("T")
R = TypeVar("R")


def dumps(obj: Any) -> str:
    return json.dumps(to_dict(obj), separators=(",", ":"), sort_keys=True)


def load(cls: type[T], data: str) -> T:
    return from_dict(cls, json.loads(data))


def loads(cls: type[T], rows: list[Any]) -> list[T]:
    return [load(cls, row[0]) for row in rows]


class SqliteStoreBase:
    """The connection, transactions and record reads of ``SqliteStore``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    # --- plumbing -----------------------------------------------------------------
    async def open(self) -> None:
        if self._executor is not None:
            return
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        try:
            self._conn = await asyncio.get_running_loop().run_in_executor(
                executor, connect, self.path
            )
        except BaseException:
            executor.shutdown(wait=False)
            raise
        self._executor = executor

    async def close(self) -> None:
        executor, conn = self._executor, self._conn
        self._executor = self._conn = None
        if executor is None:
            return
        try:
            if conn is not None:
                await asyncio.get_running_loop().run_in_executor(executor, conn.close)
        finally:
            executor.shutdown(wait=True)

    async def _call(self, fn: Callable[[sqlite3.Connection], R]) -> R:
        """Run ``fn(conn)`` on the worker thread, outside a transaction (single reads)."""
        executor, conn = self._executor, self._conn
        if executor is None or conn is None:
            raise RuntimeError("SqliteStore is not open (call open() first)")
        return await asyncio.get_running_loop().run_in_executor(executor, fn, conn)

    async def _tx(self, fn: Callable[[sqlite3.Connection], R]) -> R:
        """Run ``fn(conn)`` on the worker thread as one write transaction; a uniqueness
        violation rolls it back and raises ConflictError."""

        def run(conn: sqlite3.Connection) -> R:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except sqlite3.IntegrityError as exc:
                conn.execute("ROLLBACK")
                raise ConflictError(str(exc)) from exc
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        return await self._call(run)

    async def _one(self, cls: type[T], sql: str, *params: Any) -> T | None:
        def run(conn: sqlite3.Connection) -> T | None:
            row = conn.execute(sql, params).fetchone()
            return None if row is None else load(cls, row[0])

        return await self._call(run)

    async def _many(self, cls: type[T], sql: str, *params: Any) -> list[T]:
        return await self._call(lambda conn: loads(cls, conn.execute(sql, params).fetchall()))
