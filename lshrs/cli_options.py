"""The command line's shared options: where an index lives (`Target`), and list-valued options.

Every command reaches its index the same way; this module turns those
options into an open `LSHRS`. It knows nothing of what the commands do.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from lshrs import embedded
from lshrs.index import LSHRS


@dataclass(frozen=True)
class Target:
    """Where an index lives, as given on the command line or in the environment."""

    name: str
    redis_url: str | None
    postgres_dsn: str | None
    sqlite: Path | None
    data_dir: Path
    name_given: bool = True  # --name or LSHRS_NAME set, not the command's default
    mapping: dict[str, str | None] = field(default_factory=dict)  # --table, --id-column, ... as given

    def open(self, **params: Any) -> LSHRS:
        """The index, with the store the options chose (SQLite under data_dir by default).

        The table and its columns come from the options, else from the
        mapping the index keeps (`Store.describe`), else from the defaults
        (lshrs/reopen.py): so after a first ``lshrs index --table ...`` on an
        existing table, every later command needs only the DSN (or path) and the name.
        """
        if self.postgres_dsn and self.sqlite:
            raise click.UsageError("give --postgres-dsn or --sqlite, not both")
        return LSHRS(
            name=self.name,
            redis_url=self.redis_url,
            postgres_dsn=self.postgres_dsn,
            sqlite=self.sqlite,
            mapping=self.mapping or None,
            data_dir=self.data_dir,
            **params,
        )


# The options naming the store's table and columns: PostgresStore / SQLiteStore arguments of the same names.
_MAPPING_OPTIONS = ("table", "id_column", "vector_column", "text_column", "metadata_column")


def target_options(default_name: str = "default") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The options every command takes to find its index, gathered into one `Target` argument."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        options = [
            click.option("--name", envvar="LSHRS_NAME", default=default_name, show_default=True,
                         help="Index name (its Redis key prefix and table name). [env: LSHRS_NAME]"),
            click.option("--redis-url", envvar=["LSHRS_REDIS_URL", "REDIS_URL"],
                         help="Redis URL, e.g. redis://host:6379/0; default: the embedded local server. "
                              "[env: LSHRS_REDIS_URL, REDIS_URL]"),
            click.option("--postgres-dsn", envvar="LSHRS_POSTGRES_DSN",
                         help="Keep documents in this Postgres database. [env: LSHRS_POSTGRES_DSN]"),
            click.option("--sqlite", type=click.Path(dir_okay=False, path_type=Path), envvar="LSHRS_SQLITE",
                         help="Keep documents in this SQLite file (default: DATA_DIR/lshrs.sqlite3). "
                              "[env: LSHRS_SQLITE]"),
            click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), envvar="LSHRS_DATA_DIR",
                         default=embedded.DEFAULT_DATA_DIR, show_default=True,
                         help="Directory of the embedded Redis and SQLite data. [env: LSHRS_DATA_DIR]"),
            click.option("--table", help="The store's table (default: the index name; then the one the index keeps)."),
            click.option("--id-column", help="Integer id column of an existing table (default id)."),
            click.option("--vector-column", help="Vector column of an existing table (default embedding / vector)."),
            click.option("--text-column", help="Text column of an existing table (default text; 'none': no text)."),
            click.option("--metadata-column",
                         help="JSON metadata column of an existing table (default metadata; 'none': no metadata)."),
        ]  # fmt: skip

        def wrapped(name: str, redis_url: str | None, postgres_dsn: str | None, sqlite: Path | None,
                    data_dir: Path, **kwargs: Any) -> Any:  # fmt: skip
            source = click.get_current_context().get_parameter_source("name")
            given = source is not click.core.ParameterSource.DEFAULT
            mapping = {k: kwargs.pop(k) for k in _MAPPING_OPTIONS}
            mapping = {k: (None if v.lower() == "none" else v) for k, v in mapping.items() if v is not None}
            return command(Target(name, redis_url, postgres_dsn, sqlite, data_dir, given, mapping), **kwargs)

        functools.update_wrapper(wrapped, command)  # keeps the options declared below this decorator
        for option in reversed(options):
            wrapped = option(wrapped)
        return wrapped

    return decorate


def int_list(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    """A comma-separated list of positive integers ("8,12,16")."""
    if value is None:
        return None
    try:
        items = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        items = []
    if not items or min(items) < 1:
        raise click.BadParameter(f"expected comma-separated positive integers, got {value!r}")
    return items


def share_list(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[float, ...] | None:
    """A comma-separated list of shares in (0, 1] ("0.1,0.05"), or "none"."""
    if value is None:
        return None
    if value.strip().lower() == "none":
        return ()
    try:
        items = tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        items = ()
    if not items or not all(0.0 < v <= 1.0 for v in items):
        raise click.BadParameter(f"expected comma-separated shares in (0, 1] or 'none', got {value!r}")
    return items


def embedding_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--device and --embedding-backend, passed on as LSHRS's embedding_device and embedding_backend."""
    command = click.option(
        "--embedding-backend",
        type=click.Choice(["auto", "torch", "openvino"]),
        default="auto",
        show_default=True,
        help="auto: OpenVINO on the CPU when installed, else PyTorch (fp16 on CUDA).",
    )(command)
    return click.option(
        "--device",
        help="Where the model runs: cpu, cuda, cuda:1, mps, or several ('cuda:0,cuda:1'). [default: the best found]",
    )(command)
