"""Redis clients: from a client, a URL (standalone or cluster), REDIS_URL, or the embedded server.

Also the async twin of a sync client (the same server, for the ``a`` verbs)
and Redis memory summed over a cluster's primaries.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import redis as redis_lib

from lshrs import embedded

_CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def connect(client: Any, url: str | None, data_dir: str | Path) -> tuple[Any, bool]:
    """The redis-py client to use, and whether this object made it (and so closes it).

    A URL names a Redis Cluster either by scheme (``redis+cluster://host:port``,
    ``rediss+cluster://`` for TLS) or, for a plain ``redis://``/``rediss://``
    URL, by the node it names answering ``cluster_enabled:1`` to one
    ``INFO cluster`` call; either way any node serves as the seed and the
    result is a ``RedisCluster``. Any other URL gives a plain ``Redis``.
    """
    if client is not None:
        _check_binary(client)
        return client, False
    url = url or os.environ.get("REDIS_URL")
    if not url:
        return embedded.connect(data_dir), True
    scheme, _, rest = url.partition("://")
    if scheme.lower() in _CLUSTER_SCHEMES:
        return redis_lib.RedisCluster.from_url(f"{_CLUSTER_SCHEMES[scheme.lower()]}://{rest}"), True
    single = redis_lib.Redis.from_url(url)
    if scheme.lower() in ("redis", "rediss") and _cluster_enabled(single):
        single.close()
        return redis_lib.RedisCluster.from_url(url), True
    return single, True


def _check_binary(client: Any) -> None:
    """Refuse a client that decodes replies: bucket entries and the definition's vectors are bytes."""
    kwargs = client.get_connection_kwargs() if hasattr(client, "get_connection_kwargs") else {}
    if not kwargs and hasattr(client, "connection_pool"):
        kwargs = client.connection_pool.connection_kwargs
    if kwargs.get("decode_responses"):
        raise ValueError(
            "redis: lshrs needs a client that returns bytes (bucket entries and hyperplanes are binary); "
            "make it without decode_responses=True, or pass redis_url= and lshrs makes its own"
        )


def _cluster_enabled(client: redis_lib.Redis) -> bool:
    try:
        return bool(client.info("cluster").get("cluster_enabled"))
    except redis_lib.ResponseError:  # INFO renamed or refused by ACL: redis+cluster:// still says it
        return False


_TWIN_OPTIONS = ("host", "port", "db", "username", "password", "socket_timeout", "socket_connect_timeout",
                 "client_name", "credential_provider")  # fmt: skip


def used_memory(client: Any) -> int | None:
    """Redis' used_memory, summed over the primaries of a cluster; None where INFO is refused (ACL)."""
    try:
        if hasattr(client, "get_primaries"):
            per_node = client.info("memory", target_nodes=client.PRIMARIES)
            return sum(int(info.get("used_memory", 0)) for info in per_node.values())
        return int(client.info("memory").get("used_memory", 0))
    except redis_lib.exceptions.NoPermissionError:
        return None


def async_twin(client: Any) -> Any:
    """A redis.asyncio client for the server (or cluster) a redis-py client talks to."""
    import redis.asyncio as aredis

    if hasattr(client, "get_default_node"):  # RedisCluster: start from the same seed node
        node = client.get_default_node()
        kwargs = client.get_connection_kwargs()
        options = {k: v for k, v in kwargs.items() if k in ("username", "password") or k.startswith("ssl_")}
        if "SSL" in getattr(kwargs.get("connection_class"), "__name__", ""):
            options["ssl"] = True
        return aredis.RedisCluster(host=node.host, port=node.port, **options)
    pool = client.connection_pool
    kwargs = pool.connection_kwargs
    options = {k: kwargs[k] for k in _TWIN_OPTIONS if k in kwargs}
    if "path" in kwargs:
        options["unix_socket_path"] = kwargs["path"]
    if "SSL" in pool.connection_class.__name__:
        options.update({k: v for k, v in kwargs.items() if k.startswith("ssl_")}, ssl=True)
    return aredis.Redis(**options)
