"""PostgresStore on tables that already exist, with each supported vector column type."""

import numpy as np
import psycopg
import pytest

from lshrs import LSHRS, PostgresStore

HOSTILE_TABLE = 'wiki "docs"; DROP TABLE x; --'


@pytest.mark.parametrize(
    "dsn_fixture, vector_sql, id_sql, meta_sql",
    [
        ("pgvector_dsn", "vector(12)", "bigint", "jsonb"),
        ("postgres_dsn", "real[]", "integer", "jsonb"),
        ("postgres_dsn", "double precision[]", "bigint", "json"),
        ("postgres_dsn", "bytea", "bigint", None),
    ],
)
def test_existing_table(request, redis_client, name, dsn_fixture, vector_sql, id_sql, meta_sql):
    dsn = request.getfixturevalue(dsn_fixture)
    table = f"{name} {HOSTILE_TABLE}"
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((1_500, 12)).astype(np.float32)
    with psycopg.connect(dsn, autocommit=True) as conn:
        meta_col = f', "Meta Data" {meta_sql}' if meta_sql else ""
        conn.execute(
            f'CREATE TABLE "{table.replace(chr(34), chr(34) * 2)}" '
            f'("Doc Id" {id_sql} PRIMARY KEY, "emb;" {vector_sql}, "Body" text{meta_col}, other int)'
        )
        # the user's own rows, written without lshrs
        insert_vec = vectors.astype("<f4").tobytes if vector_sql == "bytea" else None
        with conn.cursor() as cur:
            for i in range(1_500):
                value = (
                    vectors[i].astype("<f4").tobytes()
                    if insert_vec
                    else (str(vectors[i].tolist()) if vector_sql.startswith("vector") else vectors[i].tolist())
                )
                cast = "::vector" if vector_sql.startswith("vector") else ""
                cur.execute(
                    f'INSERT INTO "{table.replace(chr(34), chr(34) * 2)}" ("Doc Id", "emb;", "Body", other) '
                    f"VALUES (%s, %s{cast}, %s, 0)",
                    (i, value, f"body {i}"),
                )
    store = PostgresStore(
        dsn,
        table=table,
        id_column="Doc Id",
        vector_column="emb;",
        text_column="Body",
        metadata_column="Meta Data" if meta_sql else None,
        create=False,
    )
    lsh = LSHRS(name=name, redis=redis_client, store=store)
    try:
        assert lsh.dim == 12
        assert lsh.index() == 1_500
        stored = store.get(np.array([3, 1]), payload=False)
        np.testing.assert_allclose(stored.vectors, vectors[[3, 1]], rtol=1e-6)
        hit = lsh.query(vectors[3], top_k=1)[0]
        assert (hit.id, hit.text) == (3, "body 3")
        new = rng.standard_normal((2, 12)).astype(np.float32)
        lsh.ingest(
            vectors=new,
            ids=[5_000, 3],
            texts=["new", "replaced"],
            metadata=[{"a": 1}, {"b": "x"}] if meta_sql else None,
        )
        hit = lsh.query(new[1], top_k=1)[0]
        assert (hit.id, hit.text) == (3, "replaced")
        if meta_sql:
            assert hit.metadata == {"b": "x"}
        assert store.count() == 1_501
        with psycopg.connect(dsn) as conn:  # columns lshrs does not map keep their values on replace
            assert (
                conn.execute(
                    f'SELECT count(*) FROM "{table.replace(chr(34), chr(34) * 2)}" WHERE other = 0'
                ).fetchone()[0]
                == 1_500
            )
    finally:
        lsh.clear()
        store.close()


def test_unknown_columns_and_types_are_refused(postgres_dsn, name):
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{name}" (id bigint, embedding text, body text)')
    with pytest.raises(ValueError, match="no column 'nope'"):
        PostgresStore(postgres_dsn, table=name, vector_column="nope", create=False)
    with pytest.raises(ValueError, match="unsupported type 'text'"):
        PostgresStore(postgres_dsn, table=name, text_column="body", metadata_column=None, create=False)


@pytest.mark.parametrize("id_sql, too_wide", [("integer", 2**32 + 5), ("smallint", 70_000)])
def test_ids_too_wide_for_the_column_are_refused_before_any_write(postgres_dsn, redis_client, name, id_sql, too_wide):
    """Binary COPY cast ids to the column's width: 2**32+5 overwrote row 5 of an integer column and
    70000 landed on row 4464 of a smallint one (issue 14). Now refused, and nothing changes."""
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{name}" (id {id_sql} PRIMARY KEY, embedding real[], body text)')
    store = PostgresStore(postgres_dsn, table=name, metadata_column=None, vector_column="embedding",
                          text_column="body", create=False)  # fmt: skip
    lsh = LSHRS(name=name, redis=redis_client, store=store, id_bytes=8)
    try:
        rng = np.random.default_rng(1)
        lsh.ingest(vectors=rng.standard_normal((10, 6)), ids=np.arange(10), texts=[f"row {i}" for i in range(10)])
        before = lsh.count(), store.count(), store.get(np.arange(10)).texts
        with pytest.raises(ValueError, match=f"the {id_sql} column 'id' holds ids in"):
            lsh.ingest(vectors=rng.standard_normal((2, 6)), ids=[too_wide, 3], texts=["wide", "three"])
        assert (lsh.count(), store.count(), store.get(np.arange(10)).texts) == before
        with pytest.raises(ValueError, match="holds ids in"):
            store.put(np.array([too_wide]), rng.standard_normal((1, 6)).astype(np.float32))
        assert store.get(np.arange(10)).texts == before[2]
    finally:
        lsh.clear()


@pytest.mark.parametrize("id_sql", ["integer", "smallint"])
def test_reads_by_id_use_the_key_index_of_narrower_id_columns(postgres_dsn, name, id_sql):
    """Ids are bound as one binary bigint[]: an integer or smallint key still answers through its index,
    and an id wider than the column finds nothing instead of failing."""
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{name}" (id {id_sql} PRIMARY KEY, embedding bytea, text text)')
    store = PostgresStore(postgres_dsn, table=name, metadata_column=None, create=False)
    rng = np.random.default_rng(2)
    store.put(np.arange(500), rng.standard_normal((500, 4)).astype(np.float32), [f"row {i}" for i in range(500)])
    rows = store.get(np.array([7, 2**40, 3, 7]))
    assert rows.ids.tolist() == [7, 3, 7] and rows.texts == ["row 7", "row 3", "row 7"]
    from lshrs.stores.postgres import _IdArray

    with store._conn.transaction(force_rollback=True):
        store._conn.execute("SET LOCAL enable_seqscan = off")
        plan = store._cursor().execute("EXPLAIN " + store._get_statement(False), (_IdArray(np.arange(5)),)).fetchall()
    assert "Index" in " ".join(line for (line,) in plan), plan


def test_a_connection_that_is_not_in_autocommit_mode_is_refused(postgres_dsn, name):
    """On psycopg's default connection every write was a savepoint in a transaction nobody
    committed: other connections saw nothing and the rows vanished on close (issue 14)."""
    conn = psycopg.connect(postgres_dsn)
    try:
        with pytest.raises(ValueError, match="needs a connection in autocommit mode"):
            PostgresStore(conn, table=name)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE  # nothing was run on it
    finally:
        conn.close()
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        store = PostgresStore(conn, table=name)
        store.put(np.arange(3), np.ones((3, 4), np.float32))
        with psycopg.connect(postgres_dsn) as other:  # another connection sees the rows
            assert other.execute(f'SELECT count(*) FROM "{name}"').fetchone() == (3,)


def _create_store(dsn: str, table: str) -> str:
    try:
        PostgresStore(dsn, table=table).close()
        return "ok"
    except Exception as exc:  # reported to the parent, which asserts there were none
        return f"{type(exc).__name__}: {exc}"


def test_workers_creating_one_new_table_at_once(postgres_dsn, name):
    """20 processes making the same new table: 12 crashed with UniqueViolation or DuplicateTable (issue 14)."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(8) as pool:
        for round in range(3):  # three new tables: the race does not show every time
            results = pool.starmap(_create_store, [(postgres_dsn, f"{name}_{round}")] * 20)
            assert results == ["ok"] * 20


def test_the_missions_table_works_without_naming_its_missing_metadata_column(postgres_dsn, redis_client, name):
    """An existing table `index | vector | raw_document` (real[] vectors), as a team already has it."""
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((300, 12)).astype(np.float32)
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{name}" (index bigint PRIMARY KEY, vector real[], raw_document text, url text)')
        with conn.cursor() as cur:
            cur.executemany(
                f'INSERT INTO "{name}" VALUES (%s, %s, %s, %s)',
                [(i, vectors[i].tolist(), f"doc {i}", f"https://x/{i}") for i in range(300)],
            )
    store = PostgresStore(postgres_dsn, table=name, id_column="index", vector_column="vector",
                          text_column="raw_document", create=False)  # fmt: skip
    lsh = LSHRS(name=name, redis=redis_client, store=store)
    assert lsh.index() == 300 and lsh.verify()["ok"]
    hit = lsh.query(vectors[42], top_k=1)[0]
    assert (hit.id, hit.text, hit.metadata) == (42, "doc 42", None)
    with pytest.raises(ValueError, match="no metadata column"):
        lsh.ingest(vectors=vectors[:1], ids=[1000], metadata=[{"a": 1}])
    assert lsh.find({"a": {"$exists": False}}).tolist() == list(range(300))  # no metadata: scanned in Python
    with pytest.raises(ValueError, match="pass text_column=None if the table has none"):
        PostgresStore(postgres_dsn, table=name, id_column="index", vector_column="vector", text_column="body")
    lsh.clear()
    lsh.close()


def test_a_long_scan_leaves_the_store_free_for_queries_and_writes(postgres_dsn, name):
    """A verify or a training sample scans for hours on a large table: other calls must not wait for it."""
    import threading

    store = PostgresStore(postgres_dsn, table=name)
    store.put(np.arange(3_000), np.random.default_rng(2).standard_normal((3_000, 8)).astype(np.float32))
    scan = store.scan(batch_size=500)
    first = next(scan)  # the scan is open, its caller busy with the first batch
    done: list[int] = []
    other = threading.Thread(target=lambda: done.append(len(store.get(np.arange(10)))))
    other.start()
    other.join(timeout=10)
    assert done == [10]  # before: blocked on the store's lock until the scan ended
    store.put(np.array([5_000]), np.ones((1, 8), np.float32))
    assert sum(len(rows) for rows in scan) + len(first) == 3_000  # the scan reads its own snapshot
    assert store.count() == 3_001
    store.close()
