"""One round trip on one pooled connection: what a non-transactional pipeline does, minus its bookkeeping.

A query is one bucket read (MGET of the probed buckets and HMGET of the
counters, or one script). Through redis-py's `Pipeline` object that read
spent about as long in the pipeline's own Python (queueing, callbacks,
reset, instrumentation) as in the socket: 0.4 ms of a 2.4 ms query on the
real corpus (benchmarks/compare.py, py-spy). Here the commands are packed,
sent and read back on one connection, with the client's own retry policy, so
the semantics are the pipeline's: every command goes in one write, every
reply is read before an error is raised (the connection stays in step), and
a dropped connection re-sends the whole batch (the writes are made
idempotent by their once keys, scripts.py).

Only for commands whose raw replies are what the caller wants: scripts
(EVAL, EVALSHA) and MGET/HMGET, which have no redis-py response callbacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.exceptions import ResponseError


def exchange(client: Any, commands: Sequence[Sequence[Any]]) -> list[Any]:
    """Send `commands` (each a full argument list) in one write and return their replies in order.

    Raises the first command's error after every reply was read, like a
    pipeline with ``raise_on_error``; a connection that failed any other way
    (a timeout part way through a reply, an interrupt) is closed rather than
    handed back to the pool with replies still unread.
    """
    pool = client.connection_pool
    own = getattr(client, "connection", None)  # a single_connection_client keeps one
    conn = own or pool.get_connection()
    done = False
    try:
        replies = conn.retry.call_with_retry(lambda: _send_and_read(conn, commands), lambda _error: conn.disconnect())
        done = True
        return replies  # type: ignore[no-any-return]
    except ResponseError:
        done = True  # every reply was read: the connection is in step
        raise
    finally:
        if not done:
            conn.disconnect()
        if own is None:
            pool.release(conn)


def _send_and_read(conn: Any, commands: Sequence[Sequence[Any]]) -> list[Any]:
    conn.send_packed_command(conn.pack_commands(commands))
    replies: list[Any] = []
    failure: ResponseError | None = None
    for _ in commands:
        try:
            replies.append(conn.read_response())
        except ResponseError as error:  # the command failed; the connection is still in step
            failure = failure or error
            replies.append(error)
    if failure is not None:
        raise failure
    return replies
