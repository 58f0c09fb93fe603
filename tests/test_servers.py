"""The test harness itself: a test server is the process the tests started, never one that merely answers."""

from __future__ import annotations

import redis
import servers
from servers import RedisServer


def test_a_port_taken_before_the_server_binds_it_is_not_mistaken_for_ours(monkeypatch):
    """Another suite's server on the port we picked answered our pings, and our tests used it."""
    other = RedisServer()
    try:
        picks = iter([other.port])
        real = servers.free_port
        monkeypatch.setattr(servers, "free_port", lambda: next(picks, None) or real())
        ours = RedisServer()
        try:
            assert ours.port != other.port
            with redis.Redis.from_url(ours.url) as client:
                assert int(client.info("server")["process_id"]) == ours.proc.pid
        finally:
            ours.stop()
    finally:
        other.stop()
