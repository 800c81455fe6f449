"""Stored rows' ids: UUIDs of version 7, in the order they were made, never repeated."""

from __future__ import annotations

import multiprocessing
import threading
import uuid
from multiprocessing.connection import Connection

from hatchlite.ids import new_id


def _random_part(text: str) -> int:
    return uuid.UUID(text).int & ((1 << 62) - 1)


def test_ids_are_version_7_uuids_in_the_order_they_were_made() -> None:
    ids = [new_id() for _ in range(20_000)]  # several share a millisecond
    assert all(uuid.UUID(i).version == 7 and uuid.UUID(i).variant == uuid.RFC_4122 for i in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_threads_never_make_the_same_id() -> None:
    made: list[list[str]] = [[] for _ in range(4)]

    def make(into: list[str]) -> None:
        into.extend(new_id() for _ in range(10_000))

    threads = [threading.Thread(target=make, args=(into,)) for into in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [i for into in made for i in into]
    assert len(set(every)) == len(every)


def _child(conn: Connection) -> None:
    conn.send([new_id() for _ in range(100)])


def test_a_forked_process_does_not_repeat_its_parents_random_bits() -> None:
    parent, child = multiprocessing.get_context("fork").Pipe()
    process = multiprocessing.get_context("fork").Process(target=_child, args=(child,))
    process.start()
    theirs = parent.recv()
    process.join(10)
    ours = [new_id() for _ in range(100)]
    assert not {_random_part(i) for i in ours} & {_random_part(i) for i in theirs}
