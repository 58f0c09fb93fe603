"""Bucket appends: Redis APPEND (shipped) against rewriting the bucket with SET(GET .. new), side by side.

    .venv/bin/python benchmarks/appends.py [--base 60000] [--added 60000] [--rounds 2]

A centroid index is bulk-built on `--base` real MiniLM vectors (realdata.py),
then `--added` more are appended in batches of 256 as ingest writes them
(hashing, ranking codes, one packed append script per batch; no store
write), once with each form of the append scripts, alternating, each on a
fresh Redis. Reports appended vectors/s and the settled Redis memory per
appended vector. APPEND grows a string in place, but Redis over-allocates a
grown string (up to twice its size), so it costs memory that a rewrite does
not; a rebuild writes every bucket exactly again. Writes results/appends.json and .md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

import realdata  # noqa: E402
from core import settled_memory  # noqa: E402
from servers import RedisServer  # noqa: E402

from lshrs import LSHRS, MemoryStore, __version__  # noqa: E402
from lshrs.buckets import scripts  # noqa: E402
from lshrs.writes import entries  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SHIPPED = dict(scripts.SCRIPTS)
# The earlier form: read the bucket into Lua and write the concatenation back.
REWRITE = {
    "append": SHIPPED["append"].replace(
        "if redis.call('EXISTS', KEYS[i]) == 1 then\n    redis.call('APPEND', KEYS[i], add)",
        "local large = redis.call('GET', KEYS[i])\n  if large then\n    redis.call('SET', KEYS[i], large .. add)",
    ),
    "append_packed": SHIPPED["append_packed"].replace(
        "if (not small) and redis.call('EXISTS', hash .. ':' .. f) == 1 then\n"
        "      redis.call('APPEND', hash .. ':' .. f, add)",
        "local large = (not small) and redis.call('GET', hash .. ':' .. f)\n"
        "    if large then\n      redis.call('SET', hash .. ':' .. f, large .. add)",
    ),
}
assert all(REWRITE[k] != SHIPPED[k] for k in REWRITE), "the shipped append scripts changed: update REWRITE"


def measure(form: str, vectors: np.ndarray, base: np.ndarray, added: np.ndarray) -> dict:
    scripts.SCRIPTS.update(SHIPPED if form == "APPEND" else REWRITE)
    server = RedisServer()
    try:
        client = redis.Redis.from_url(server.url)
        store = MemoryStore()
        store.put(base.astype(np.int64), vectors[base])
        lsh = LSHRS(name="appends", redis=client, store=store)
        lsh.index()
        before = settled_memory(client)
        started = time.perf_counter()
        for lo in range(0, len(added), 256):
            rows = added[lo : lo + 256].astype(np.int64)
            lsh.buckets.apply(add=entries(lsh.attachment, lsh.attachment.family, rows, vectors[rows]))
        seconds = time.perf_counter() - started
        grown = settled_memory(client) - before
        mean_bucket = lsh.stats()["bucket_size"]["mean"]
        return {"form": form, "per_s": len(added) / seconds, "bytes_per_vector": grown / len(added),
                "mean_bucket_after": mean_bucket}  # fmt: skip
    finally:
        scripts.SCRIPTS.update(SHIPPED)
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=int, default=60_000)
    parser.add_argument("--added", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    _, vectors = realdata.load()
    order = np.random.default_rng(0).permutation(len(vectors))
    base, added = order[: args.base], order[args.base : args.base + args.added]
    rows = []
    for round_ in range(args.rounds):
        for form in ("SET(GET .. new)", "APPEND"):
            row = {"round": round_, **measure(form, vectors, base, added)}
            print(row, flush=True)
            rows.append(row)
    result = {"base": len(base), "added": len(added), "lshrs": __version__, "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "appends.json").write_text(json.dumps(result, indent=2))
    lines = [
        "# Bucket appends: APPEND against a rewrite",
        "",
        f"Centroid index bulk-built on {len(base):,} real MiniLM vectors, then {len(added):,} more appended "
        "in batches of 256 (hashing, codes and the packed append script; no store write); each form on a "
        f"fresh Redis, alternating. lshrs {__version__}. Reproduce: `.venv/bin/python benchmarks/appends.py`.",
        "",
        "| round | form | appended vectors/s | Redis bytes per appended vector | mean bucket after |",
        "| ---: | --- | ---: | ---: | ---: |",
        *(
            f"| {r['round']} | {r['form']} | {r['per_s']:,.0f} | {r['bytes_per_vector']:.1f} | "
            f"{r['mean_bucket_after']:.0f} |"
            for r in rows
        ),  # fmt: skip
    ]
    (RESULTS / "appends.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
