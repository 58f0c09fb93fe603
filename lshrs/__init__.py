"""lshrs: semantic search with LSH buckets in Redis and documents in your own database."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lshrs.index import LSHRS, Hit
from lshrs.stores.base import Rows, Store
from lshrs.stores.memory import MemoryStore
from lshrs.stores.sqlite import SQLiteStore

__version__ = "1.0.0"

__all__ = [
    "LSHRS",
    "Hit",
    "MemoryStore",
    "PostgresStore",
    "RedisStore",
    "Rows",
    "SQLiteStore",
    "Store",
    "__version__",
]

if TYPE_CHECKING:
    from lshrs.stores.postgres import PostgresStore
    from lshrs.stores.redis import RedisStore


def __getattr__(name: str) -> Any:
    # Optional backends import their drivers only when asked for.
    if name == "PostgresStore":
        from lshrs.stores.postgres import PostgresStore

        return PostgresStore
    if name == "RedisStore":
        from lshrs.stores.redis import RedisStore

        return RedisStore
    raise AttributeError(f"module 'lshrs' has no attribute {name!r}")
