"""Progress bars: one helper, so every long verb shows (or hides) them the same way."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def bar(desc: str, *, show: bool, total: int | None = None, unit: str = "rows", initial: int = 0,
        iterable: Iterable[Any] | None = None) -> Any:  # fmt: skip
    """A tqdm bar (a no-op one when `show` is False; tqdm is imported only here)."""
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total if show else None, unit=unit, initial=initial, disable=not show)
