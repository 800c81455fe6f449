"""Stream chunks (`ctx.put_stream`), stored in order per workflow run so a subscriber in
any process reads them all, from the first, however late it subscribes."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from hatchlite.store.records import TERMINAL

# A chunk to store: workflow run id, task run id, data, time.
ChunkIn = tuple[str, str, str, float]


@dataclass(frozen=True, slots=True)
class Chunk:
    id: int
    data: str


def insert_chunks(conn: sqlite3.Connection, chunks: list[ChunkIn]) -> None:
    if chunks:
        conn.executemany(
            """INSERT INTO stream_chunks (workflow_run_id, task_run_id, data, created_at)
               VALUES (?, ?, ?, ?)""",
            chunks,
        )


def chunks_after_txn(
    conn: sqlite3.Connection, run_id: str, after: int, limit: int = 1000
) -> tuple[list[Chunk], str | None]:
    """Chunks of a run with id above `after`, and the run's status (None: no such run).
    The status is read first: chunks written before the run ended are all returned by
    this read or a later one."""
    row = conn.execute("SELECT status FROM workflow_runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        return [], None
    chunks = [
        Chunk(int(chunk_id), str(data))
        for chunk_id, data in conn.execute(
            """SELECT id, data FROM stream_chunks WHERE workflow_run_id = ? AND id > ?
               ORDER BY id LIMIT ?""",
            (run_id, after, limit),
        )
    ]
    return chunks, str(row[0])


def is_terminal(status: str | None) -> bool:
    return status in TERMINAL
