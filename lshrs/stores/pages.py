"""A store's scan one page at a time, so exact scans and builds can be sequences of steps."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from lshrs.stores.base import Rows, capabilities


class Pages:
    """A store's scan one page at a time, so the exact path can be a sequence of steps."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._flag = capabilities(store).scan_payload

    def scan(self, batch_size: int, *, after: int | None = None, payload: bool = True) -> Iterator[Rows]:
        """The store's scan, reading ids and vectors only when `payload` is False and the store allows it."""
        options = {"payload": payload} if self._flag else {}
        return iter(self.store.scan(batch_size=batch_size, after=after, **options))

    def page(self, after: int | None, limit: int, payload: bool = True) -> Rows | None:
        """The first `limit` rows with ids above `after`, None past the end (by the store's `page` if it has one)."""
        native = getattr(self.store, "page", None)
        if callable(native):
            return native(after, limit, payload)  # type: ignore[no-any-return]
        return next(self.scan(limit, after=after, payload=payload), None)

    async def apage(self, after: int | None, limit: int, payload: bool = True) -> Rows | None:
        native = getattr(self.store, "apage", None)
        if native is not None:
            return await native(after, limit, payload)  # type: ignore[no-any-return]
        return await asyncio.to_thread(self.page, after, limit, payload)
