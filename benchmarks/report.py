"""compare.py's results as a markdown report and two plots (kept apart so a report can be redrawn from the JSON).

.venv/bin/python benchmarks/report.py    # redraw from benchmarks/results/compare.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from lshrs.centroids import DEFAULT_RERANK_DEPTH, default_nlist, default_probes  # noqa: E402
from lshrs.definition import DEFAULT_FAMILY  # noqa: E402
from lshrs.index import DEFAULT_NUM_BITS, DEFAULT_NUM_PROBES, DEFAULT_NUM_TABLES  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
TARGET_RECALL = 0.95
MAX_RERANKED = 0.02
LSHRS_MEMORY = "lshrs (memory)"
REDISEARCH = "RediSearch HNSW"
OLD_LSHRS = "lshrs 0.2.0b1"


def best(rows: list[dict], engine: str, *, max_reranked: float | None = None) -> dict | None:
    """An engine's fastest row (p50) at recall@10 >= 0.95; else its highest-recall row."""
    mine = [r for r in rows if r["engine"] == engine]
    if max_reranked is not None:
        mine = [r for r in mine if r.get("reranked_fraction", 0.0) <= max_reranked]
    ok = [r for r in mine if r["recall_at_10"] >= TARGET_RECALL]
    if ok:
        return min(ok, key=lambda r: r["p50_ms"])
    return max(mine, key=lambda r: r["recall_at_10"]) if mine else None


def engines(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(r["engine"] for r in rows))


def setting(row: dict) -> str:
    if "nlist" in row:
        top_p = "" if row.get("top_p") is None else f", top_p {row['top_p']}"
        return f"nlist {row['nlist']}, {row['num_probes']} probes, depth {row.get('rerank_depth')}{top_p}"
    if "num_tables" in row and "num_probes" in row:
        top_p = "" if row.get("top_p") is None else f", top_p {row['top_p']}"
        return f"L={row['num_tables']}, K={row['num_bits']}, {row['num_probes']} probes{top_p}"
    knobs = {k: v for k, v in row.items() if k in ("ef_search", "ef_runtime", "ef", "rerank", "probes")}
    return ", ".join(f"{k} {v}" for k, v in knobs.items()) or "-"


def _bytes(row: dict) -> float | None:
    return row.get("redis_bytes_per_vector", row.get("bytes_per_vector"))


def _build_rate(row: dict) -> float | None:
    return row.get("build_vectors_per_s")


def headline(rows: list[dict]) -> list[str]:
    lines = [
        "| engine | setting | recall@10 | p50 ms | p95 ms | QPS (1 client) | batch QPS | bytes/vector | build vec/s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in engines(rows):
        r = best(rows, name)
        if r is None:
            continue
        b, rate = _bytes(r), _build_rate(r)
        lines.append(
            f"| {name} | {setting(r)} | {r['recall_at_10']:.3f} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} "
            f"| {r['single_qps']:,.0f} | {r['batch_qps']:,.0f} | {_fmt(b, '{:,.0f}')} | {_fmt(rate, '{:,.0f}')} |"
        )
    return lines


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def default_row(rows: list[dict], corpus: int) -> dict | None:
    """lshrs at its defaults (memory store, no top_p), if the sweep measured them."""
    if DEFAULT_FAMILY == "centroids":
        nlist = default_nlist(corpus)
        wanted: tuple = (nlist, default_probes(nlist), DEFAULT_RERANK_DEPTH, None)
        keys: tuple = ("nlist", "num_probes", "rerank_depth", "top_p")
    else:
        wanted = (DEFAULT_NUM_TABLES, DEFAULT_NUM_BITS, DEFAULT_NUM_PROBES, None)
        keys = ("num_tables", "num_bits", "num_probes", "top_p")
    mine = (r for r in rows if r["engine"] == LSHRS_MEMORY)
    return next((r for r in mine if tuple(r.get(k) for k in keys) == wanted), None)


def targets(rows: list[dict], corpus: int) -> list[str]:
    """The issue's targets, each as measured / bound, with the margin (memory and build at the defaults)."""
    mine, rs, old = default_row(rows, corpus) or best(rows, LSHRS_MEMORY), best(rows, REDISEARCH), _any(rows, OLD_LSHRS)
    two_pct = best(rows, LSHRS_MEMORY, max_reranked=MAX_RERANKED)
    checks: list[tuple[str, float | None, float | None, str]] = []
    if mine and old and _bytes(old):
        checks.append(("Redis bytes/vector <= 1/10 of lshrs 0.2.0b1", _bytes(mine), _bytes(old) / 10, "<="))
    if mine and rs:
        checks.append(("Redis bytes/vector <= 1/40 of RediSearch HNSW", _bytes(mine), _bytes(rs) / 40, "<="))
    if mine and old and _build_rate(old):
        checks.append(("build >= 30x lshrs 0.2.0b1", _build_rate(mine), 30 * _build_rate(old), ">="))
    if mine and rs:
        checks.append(("build >= 20x RediSearch HNSW load", _build_rate(mine), 20 * _build_rate(rs), ">="))
        # with texts (lshrs' default), then ids only: what RediSearch's NOCONTENT reply holds
        for suffix in ("", ", ids only"):
            for store, factor in (("memory", 1.5), ("sqlite", 3.0), ("postgres", 5.0)):
                row = best(rows, f"lshrs ({store}{suffix})")
                if row and row["recall_at_10"] >= TARGET_RECALL:
                    label = f"p50 at recall >= 0.95, {store} store{suffix} <= {factor}x RediSearch"
                    checks.append((label, row["p50_ms"], factor * rs["p50_ms"], "<="))
        fast = best(rows, LSHRS_MEMORY)
        if fast is not None:
            checks.append(("query_many QPS > RediSearch single-client QPS", fast["batch_qps"], rs["single_qps"], ">="))
    if two_pct:
        checks.append(("recall@10 >= 0.95 reranking <= 2% of the corpus", two_pct["recall_at_10"], TARGET_RECALL, ">="))
    lines = ["| target | measured | bound | met | margin |", "| --- | ---: | ---: | --- | ---: |"]
    for label, value, bound, op in checks:
        if value is None or bound is None:
            continue
        met = value <= bound if op == "<=" else value >= bound
        margin = bound / value if op == "<=" else value / bound
        lines.append(f"| {label} | {value:,.3f} | {bound:,.3f} | {'yes' if met else 'NO'} | {margin:.2f}x |")
    return lines


def gaps(rows: list[dict]) -> list[str]:
    """Why lshrs' query targets are missed, from the rows: how many candidates its fastest passing query handles."""
    fast, rs = best(rows, LSHRS_MEMORY), best(rows, REDISEARCH)
    if fast is None or rs is None or fast["p50_ms"] <= 1.5 * rs["p50_ms"] or "num_tables" not in fast:
        return []
    same = [r for r in rows if r["engine"] == LSHRS_MEMORY and r.get("top_p") is None]
    full = next((r for r in same if all(r[k] == fast[k] for k in ("num_tables", "num_bits", "num_probes"))), None)
    if full is None:
        return []
    candidates = full["reranked"]
    fewest = min((r for r in same if r["recall_at_10"] >= TARGET_RECALL), key=lambda r: r["reranked_fraction"])
    return [
        "## Why the query targets are missed, and what would close them",
        "",
        f"- lshrs' fastest setting at recall >= 0.95 ({setting(fast)}) gathers {candidates:,.0f} LSH candidates",
        f"  per query ({100 * full['reranked_fraction']:.1f} % of the corpus) from "
        f"{fast['num_tables'] * fast['num_probes']:,} buckets and reranks {fast['reranked']:,.0f} of them; its p50",
        f"  of {fast['p50_ms']:.1f} ms is {1e3 * fast['p50_ms'] / candidates:.2f} µs per candidate: the Lua bucket",
        "  read, collision counting and sketch ranking. RediSearch's HNSW answers from a few hundred vectors",
        f"  visited in C ({rs['p50_ms']:.2f} ms).",
        "- On real MiniLM embeddings a query's neighbours sit at cosine 0.5-0.8, where a random hyperplane often",
        "  separates them from the query: the fewest candidates any setting above needed for recall 0.95 was",
        f"  {100 * fewest['reranked_fraction']:.1f} % of the corpus ({setting(fewest)}). The sketch stage (top_p)",
        "  already keeps the store reads under 1 % of the corpus",
        "  ([sketch.md](sketch.md): ranking by collision count instead keeps recall at 0.76-0.92).",
        "- What would close it: fewer candidates, from buckets drawn from the data. [partition.md](partition.md)",
        "  measures spherical k-means centroids as buckets, the same bucket -> ids layout: 3.9 % of the corpus",
        "  as candidates for recall 0.96 (4,096 centroids, 128 probed), a third to a fifth; at the per-candidate",
        "  cost above that is still several times RediSearch, so the candidate path would also have to leave",
        "  Python (a Redis module or a compiled extension). Neither is built.",
        "- The Postgres and Redis-hashes stores add the vector read of the reranked share to the same path.",
    ]


def _any(rows: list[dict], engine: str) -> dict | None:
    return next((r for r in rows if r["engine"] == engine), None)


def sweep_table(rows: list[dict], engine: str) -> list[str]:
    lines = [
        f"### {engine}",
        "",
        "| setting | recall@10 | reranked | p50 ms | p95 ms | batch QPS | bytes/vector | build vec/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in (r for r in rows if r["engine"] == engine):
        reranked = f"{100 * r['reranked_fraction']:.2f} %" if "reranked_fraction" in r else "-"
        lines.append(
            f"| {setting(r)} | {r['recall_at_10']:.3f} | {reranked} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} "
            f"| {r['batch_qps']:,.0f} | {_fmt(_bytes(r), '{:,.0f}')} | {_fmt(_build_rate(r), '{:,.0f}')} |"
        )
    return lines + [""]


def markdown(result: dict, stem: str = "compare") -> str:
    rows = result["rows"]
    load = result["load_average"]
    versions = ", ".join(f"{k} {v}" for k, v in result.get("versions", {}).items())
    lines = [
        f"# lshrs against the alternatives: {result['corpus']:,} real MiniLM embeddings",
        "",
        f"Corpus: {', '.join(f'{k} {v:,}' for k, v in result['sources'].items())} documents embedded with "
        f"all-MiniLM-L6-v2 (384-d); {result['queries']:,} held-out documents as queries (recall, batch QPS), "
        f"the first {result['timed_queries']} of them timed one at a time (p50, p95). Ground truth: exact top-10 "
        "by numpy. top_k = 10 everywhere.",
        "",
        f"Machine: {result['machine']}, Python {result['python']}, lshrs {result['lshrs']}; {versions}. "
        f"Load average {load['start'][0]:.2f} at the start, {load['end'][0]:.2f} at the end.",
        "",
        "Reproduce: `bash benchmarks/setup.sh && .venv/bin/python benchmarks/realdata.py && "
        ".venv/bin/python benchmarks/compare.py`.",
        "",
        "Bytes/vector: for lshrs and lshrs 0.2.0b1 the Redis `used_memory` growth of the build (buckets only:",
        "the vectors stay in the user's store); RediSearch the same growth with vectors and HNSW graph; FAISS the",
        "serialized index; pgvector the table plus index on disk. Build: vectors/s of the bucket build with the",
        "vectors already in the store (lshrs), of loading and indexing (the others).",
        "",
        "## Headline (each engine at its fastest setting reaching recall@10 >= 0.95, else its best recall)",
        "",
        *headline(rows),
        "",
        "## Targets",
        "",
        *targets(rows, result["corpus"]),
        "",
        *gaps(rows),
        "",
        f"![recall against latency]({stem}-recall.png)",
        "",
        f"![memory and build rate]({stem}-cost.png)",
        "",
        "## Every setting measured",
        "",
    ]
    for name in engines(rows):
        lines += sweep_table(rows, name)
    return "\n".join(lines) + "\n"


def plots(result: dict, folder: Path, stem: str = "compare") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for name in engines(rows):
        mine = sorted((r for r in rows if r["engine"] == name), key=lambda r: r["recall_at_10"])
        xs, ys = [r["recall_at_10"] for r in mine], [r["p50_ms"] for r in mine]
        if name == LSHRS_MEMORY:
            ax.scatter(xs, ys, s=10, alpha=0.4, label=f"{name}, every setting")
            front = _pareto(mine)
            ax.plot([r["recall_at_10"] for r in front], [r["p50_ms"] for r in front], "-o", ms=3, label=f"{name}")
        else:
            ax.plot(xs, ys, "-o" if len(mine) > 1 else "s", ms=4, label=name)
    ax.axvline(TARGET_RECALL, color="grey", lw=0.8, ls="--")
    ax.set_yscale("log")
    ax.set_xlabel("recall@10")
    ax.set_ylabel("single-query p50 (ms, log)")
    ax.set_title(f"{result['corpus']:,} MiniLM vectors, {result['machine']}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / f"{stem}-recall.png", dpi=110)
    plt.close(fig)
    _cost_plot(result, folder, plt, stem)


def _pareto(rows: list[dict]) -> list[dict]:
    """Settings no other setting beats on both recall and p50."""
    front, fastest = [], float("inf")
    for r in sorted(rows, key=lambda r: -r["recall_at_10"]):
        if r["p50_ms"] < fastest:
            front.append(r)
            fastest = r["p50_ms"]
    return sorted(front, key=lambda r: r["recall_at_10"])


def _cost_plot(result: dict, folder: Path, plt, stem: str) -> None:
    rows = result["rows"]
    chosen = [(name, best(rows, name)) for name in engines(rows)]
    chosen = [(n, r) for n, r in chosen if r is not None]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    names = [n for n, _ in chosen]
    left.barh(names, [_bytes(r) or 0 for _, r in chosen])
    left.set_xscale("log")
    left.set_xlim(left=10)
    left.set_xlabel("bytes per vector (log; lshrs: Redis only, the vectors stay in the store)")
    right.barh(names, [_build_rate(r) or 0 for _, r in chosen])
    right.set_xscale("log")
    right.set_xlim(left=100)
    for axis in (left, right):
        axis.xaxis.set_minor_formatter(plt.NullFormatter())
    right.set_xlabel("build, vectors/s (log)")
    right.set_yticklabels([])
    fig.suptitle("memory and build rate (each engine at its headline setting)")
    fig.tight_layout()
    fig.savefig(folder / f"{stem}-cost.png", dpi=110)
    plt.close(fig)


def write(result: dict, folder: Path, stem: str = "compare") -> None:
    (folder / f"{stem}.md").write_text(markdown(result, stem))
    plots(result, folder, stem)


if __name__ == "__main__":
    data = json.loads((RESULTS / "compare.json").read_text())
    write(data, RESULTS)
    sys.stdout.write((RESULTS / "compare.md").read_text())
