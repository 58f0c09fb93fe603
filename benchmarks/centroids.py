"""Choices inside lshrs/centroids.py, measured offline (numpy only, no Redis).

    .venv/bin/python benchmarks/centroids.py --embed-wiki /tmp/centroids_wiki   # once, ~3.5 min on CPU
    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/centroids.py --vectors /tmp/centroids_wiki.npy \
        --groups /tmp/centroids_wiki_articles.npy --queries /tmp/centroids_wiki_titles.npy     # ~50 s

--embed-wiki embeds the 4,441 passages (and 106 article titles) of the
Wikipedia slice in gensim's wheel with all-MiniLM-L6-v2. Without --vectors
only the synthetic sets run. Query sets: 200 held-out passages (truth: exact
cosine top-10 of the rest); the same, but truth and candidates skip the
query's own article (--groups; its passages overlap and embed alike, so this
asks for other documents: the hard set); the titles as queries (--queries).
Recall@10 is measured after keeping the best `depth` candidates by code and
reranking them exactly. Sections: init (random rows vs k-means++), ranking
(Hamming vs asymmetric; rotation; centred or unit query; a 2-byte per-entry
scale), bits (shorter codes), sample (training rows per centroid), spill
(none vs second-nearest vs SOAR at equal entries read), speed.

Results (one core, nlist 128 = default_nlist for ~4.2k rows), on the hard set:

    nprobe 16 (582 candidates), depth     10     25     50    100
    hamming                            0.520  0.749  0.853  0.913
    asymmetric                         0.645  0.863  0.920  0.935
    asymmetric, rotated                0.654  0.861  0.920  0.936
    random order                       0.013  0.038  0.105  0.193

    spill, asym depth 50: recall / entries read per query
    none      np8 0.836/308  np16 0.920/582   np32 0.951/1118
    SOAR l=1  np4 0.793/312  np8  0.926/605   np16 0.962/1161

Title queries, same settings: asymmetric 0.757/0.956/0.976/0.982 vs Hamming
0.682/0.902/0.965/0.973; spill: none np16 0.976/584, np32 0.984/1130 vs SOAR
np8 0.981/589, np16 0.981/1150. Held-out passages: asymmetric reaches 0.990 at
depth 25 (Hamming 0.963). k-means++ vs random rows: mean cosine 0.7183/0.7204
vs 0.7180/0.7192 (two seeds), recall at nprobe 4-16 within 0.02 either way.
Rows per centroid (nlist 64, share of true top-10 in 4 probed lists, hard set):
16: 0.752, 32: 0.786, 66: 0.779; title queries 0.920, 0.938, 0.953.
Speed, 20,000 candidates x 48 bytes: hamming_pairs 0.6 ms, asymmetric_scores
1.7 ms (unpack + einsum 25 ms).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# loaded by path: the scorers need numpy only, not the package and its servers
_spec = importlib.util.spec_from_file_location("lshrs_centroids", ROOT / "lshrs" / "centroids.py")
assert _spec and _spec.loader
C = sys.modules["lshrs_centroids"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(C)

QUERIES = 200
K = 10
DEPTHS = (10, 15, 25, 50, 100, 200)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def synthetic(n: int = 20_200, clusters: int = 200, dim: int = 64, spread: float = 1.0, seed: int = 0) -> np.ndarray:
    """Gaussian clusters on the unit sphere; `spread` is the noise norm relative to the centre's."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((clusters, dim)))
    labels = rng.integers(0, clusters, n)
    return unit(centres[labels] + spread * rng.standard_normal((n, dim)) / np.sqrt(dim))


def split(x: np.ndarray, groups: np.ndarray | None = None, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Hold out QUERIES rows; with `groups` (e.g. article ids), a query's truth skips its own group.

    Passages of one article overlap and embed alike; skipping them asks for
    neighbours from other documents, a harder and more search-like task.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    base, queries = unit(x[order[QUERIES:]]), unit(x[order[:QUERIES]])
    sims = queries @ base.T
    if groups is not None:
        sims[groups[order[:QUERIES]][:, None] == groups[order[QUERIES:]][None, :]] = -np.inf
    return base, queries, np.argsort(-sims, axis=1)[:, :K], sims


def with_queries(x: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, ...]:
    """Separate queries (e.g. embedded article titles) against every row."""
    base, queries = unit(x), unit(queries)
    sims = queries @ base.T
    return base, queries, np.argsort(-sims, axis=1)[:, :K], sims


def kmeanspp(x: np.ndarray, nlist: int, seed: int, iterations: int = C.ITERATIONS) -> np.ndarray:
    """k-means++ seeding (cosine distance 1 - <x, c>) followed by the module's Lloyd iterations."""
    rng = np.random.default_rng(seed)
    chosen = [int(rng.integers(len(x)))]
    dist = 1.0 - x @ x[chosen[0]]
    for _ in range(nlist - 1):
        p = np.maximum(dist, 0) ** 2
        chosen.append(int(rng.choice(len(x), p=p / p.sum())))
        dist = np.minimum(dist, 1.0 - x @ x[chosen[-1]])
    centroids = x[chosen]
    for _ in range(iterations):
        _, _, sums = C._lloyd_pass(x, centroids)
        empty = np.linalg.norm(sums, axis=1) == 0
        sums[empty] = x[rng.choice(len(x), int(empty.sum()), replace=False)]
        centroids = unit(sums)
    return centroids


def buckets_of(assign: np.ndarray, nlist: int) -> list[np.ndarray]:
    """Ids per bucket; `assign` is (n, entries) bucket numbers."""
    ids = np.repeat(np.arange(len(assign)), assign.shape[1])
    flat = assign.ravel()
    order = np.argsort(flat, kind="stable")
    return np.split(ids[order], np.cumsum(np.bincount(flat, minlength=nlist))[:-1])


def candidates(lists: list[np.ndarray], probes: np.ndarray) -> list[np.ndarray]:
    return [np.unique(np.concatenate([lists[b] for b in row])) for row in probes]


def recall(sims, truth, cands, score=None, depth=None) -> float:
    """Recall@10 after keeping the `depth` best candidates by `score(i, cand)` and reranking exactly."""
    hits = 0
    for i, cand in enumerate(cands):
        cand = cand[np.isfinite(sims[i, cand])]  # rows of the query's own article are not in its index
        if score is not None and depth is not None and len(cand) > depth:
            cand = cand[np.argsort(-score(i, cand), kind="stable")[:depth]]
        top = cand[np.argsort(-sims[i, cand])[:K]]
        hits += len(np.intersect1d(top, truth[i]))
    return hits / (K * len(cands))


def soar(cen, base: np.ndarray, lam: float) -> np.ndarray:
    """Second bucket: SOAR's spill, the centroid whose residual is least parallel to the first's."""
    scores = base.astype(np.float64) @ cen.centroids.T.astype(np.float64)
    first = np.argmax(scores, axis=1)
    r = base - cen.centroids[first]
    rn2 = np.maximum((r * r).sum(1), 1e-12)
    rx = (r * base).sum(1)
    rc = r @ cen.centroids.T
    loss = (2 - 2 * scores) + lam * (rx[:, None] - rc) ** 2 / rn2[:, None]
    loss[np.arange(len(base)), first] = np.inf
    return np.stack([first, np.argmin(loss, axis=1)], axis=1)


def by_asym(queries: np.ndarray, codes: np.ndarray, scale: np.ndarray | None = None):
    """Scorer: asymmetric estimate for query i over candidate rows `cand`, optionally times a per-row scale."""

    def score(i, cand):
        s = C.asymmetric_scores(queries[i : i + 1], np.zeros(len(cand), np.int64), codes[cand])
        return s if scale is None else s * scale[cand]

    return score


def by_hamming(query_codes: np.ndarray, codes: np.ndarray):
    """Scorer: minus the Hamming distance of query i's code to each candidate's."""
    return lambda i, cand: -C.hamming_pairs(query_codes[i : i + 1], np.zeros(len(cand), np.int64), codes[cand])


def section_init(name, base, queries, truth, sims, nlist, probes_list):
    print(f"\n## {name}: init (nlist {nlist}, {len(base)} rows, {len(base) / nlist:.0f} per centroid)")
    for label, make in (
        ("random", lambda s: C.train(base, nlist, seed=s)),
        ("k-means++", lambda s: kmeanspp(base, nlist, s)),
    ):
        for seed in (0, 1):
            t = time.perf_counter()
            cents = make(seed)
            took = time.perf_counter() - t
            cen = C.Centroids(cents, base.mean(0))
            assign = cen.codes(base)
            objective = float(np.mean(np.max(base @ cents.T, axis=1)))
            lists = buckets_of(assign, nlist)
            sizes = np.bincount(assign[:, 0], minlength=nlist)
            imbalance = sizes.max() / sizes.mean()
            row = [f"{label:9s} seed {seed}: {took:5.1f}s mean cos {objective:.4f} max/mean list {imbalance:.2f}"]
            for p in probes_list:
                row.append(f"np{p} {recall(sims, truth, candidates(lists, cen.probes(queries, p)[:, 0])):.3f}")
            print("  " + " ".join(row))


def section_ranking(name, base, queries, truth, sims, cen, nprobe, depths):
    lists = buckets_of(cen.codes(base), cen.nlist)
    cands = candidates(lists, cen.probes(queries, nprobe)[:, 0])
    n_cand = np.mean([len(c) for c in cands])
    print(f"\n## {name}: ranking, nprobe {nprobe}, {n_cand:.0f} candidates/query, "
          f"all reranked: {recall(sims, truth, cands):.3f}")  # fmt: skip
    dim = base.shape[1]
    rotation = np.linalg.qr(np.random.default_rng(0).standard_normal((dim, dim)))[0].astype(np.float32)
    print("  depth: " + " ".join(f"{d:>6d}" for d in depths))
    for rot in (False, True):
        rotate = (lambda v: v @ rotation) if rot else (lambda v: v)
        xc = rotate(C.centre(base, cen.mean))
        codes = np.packbits(xc > 0, axis=1)
        qc = rotate(C.centre(queries, cen.mean))
        qu = rotate(queries)
        scale = ((xc * xc).sum(1) / np.abs(xc).sum(1)).astype(np.float16).astype(np.float32)
        scorers = {
            "hamming": by_hamming(np.packbits(qc > 0, axis=1), codes),
            "asym centred q": by_asym(qc, codes),
            "asym unit q": by_asym(qu, codes),
            "asym + scale": by_asym(qc, codes, scale),  # 2 more bytes per entry: |x_c|^2 / |x_c|_1
        }
        for kind, scorer in scorers.items():
            row = [recall(sims, truth, cands, scorer, d) for d in depths]
            print(f"  {'rot ' if rot else ''}{kind:16s} " + " ".join(f"{r:6.3f}" for r in row))
    rng = np.random.default_rng(1)
    row = [recall(sims, truth, cands, lambda i, c: rng.random(len(c)), d) for d in depths]
    print(f"  {'random order':16s} " + " ".join(f"{r:6.3f}" for r in row))


def section_spill(name, base, queries, truth, sims, cen, probes_list, depth):
    print(f"\n## {name}: spill (recall@10 after asym ranking to depth {depth}; entries read per query)")
    codes = C.rank_codes(base, cen.mean)
    for label, assign in (
        ("none", cen.codes(base)),
        ("2nd nearest", soar(cen, base, 0.0)),
        ("SOAR l=1", soar(cen, base, 1.0)),
    ):
        lists = buckets_of(assign, cen.nlist)
        row = []
        for p in probes_list:
            probes = cen.probes(queries, p)[:, 0]
            entries = np.mean([sum(len(lists[b]) for b in r) for r in probes])
            score = by_asym(C.centre(queries, cen.mean), codes)
            row.append(f"np{p} {recall(sims, truth, candidates(lists, probes), score, depth):.3f}/{entries:.0f}")
        print(f"  {label:12s} " + " ".join(row))


def section_bits(name, sims, truth, base, queries, cen, nprobe, depths):
    """Shorter codes: the first `bits` signs, of the centred vector or of a randomly rotated one."""
    lists = buckets_of(cen.codes(base), cen.nlist)
    cands = candidates(lists, cen.probes(queries, nprobe)[:, 0])
    dim = base.shape[1]
    rotation = np.linalg.qr(np.random.default_rng(0).standard_normal((dim, dim)))[0].astype(np.float32)
    print(f"\n## {name}: code bits (asym, nprobe {nprobe}); depth: " + " ".join(f"{d:>6d}" for d in depths))
    for bits in (dim // 4, dim // 2, dim):
        for rot in (False, True):
            xc, qc = C.centre(base, cen.mean), C.centre(queries, cen.mean)
            if rot:
                xc, qc = xc @ rotation, qc @ rotation
            score = by_asym(qc[:, :bits], np.packbits(xc[:, :bits] > 0, axis=1))
            row = [recall(sims, truth, cands, score, d) for d in depths]
            print(f"  {bits:4d} bits {'rotated' if rot else '       '} " + " ".join(f"{r:6.3f}" for r in row))


def section_sample(name, sims, truth, base, queries, nlist, probes_list):
    """Candidate recall when the centroids are trained on fewer rows per centroid (all rows assigned)."""
    print(f"\n## {name}: training rows per centroid (nlist {nlist}; share of true top-10 in the probed lists)")
    rng = np.random.default_rng(0)
    for per in (4, 8, 16, 32, len(base) // nlist):
        rows = base[rng.choice(len(base), min(len(base), per * nlist), replace=False)]
        cen = C.Centroids(C.train(rows, nlist, seed=0), base.mean(0))
        lists = buckets_of(cen.codes(base), nlist)
        row = [f"np{p} {recall(sims, truth, candidates(lists, cen.probes(queries, p)[:, 0])):.3f}" for p in probes_list]
        print(f"  {per:3d} rows/centroid " + " ".join(row))


def section_speed(dim=384, m=20_000, q=1):
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, (m, dim // 8), dtype=np.uint8)
    query = rng.standard_normal((q, dim)).astype(np.float32)
    qcode = np.packbits(query > 0, axis=1)
    qi = np.sort(rng.integers(0, q, m))

    def timeit(f):
        f()
        t = time.perf_counter()
        for _ in range(20):
            f()
        return (time.perf_counter() - t) / 20 * 1e3

    signs = np.where(np.unpackbits(codes, axis=1) > 0, 1.0, -1.0).astype(np.float32)
    print(f"\n## speed, {m} candidates x {dim // 8} code bytes, {q} queries (ms)")
    print(f"  hamming_pairs      {timeit(lambda: C.hamming_pairs(qcode, qi, codes)):.2f}")
    print(f"  asymmetric_scores  {timeit(lambda: C.asymmetric_scores(query, qi, codes)):.2f}")
    unpack = lambda: np.einsum("ij,ij->i", np.unpackbits(codes, axis=1).astype(np.float32) * 2 - 1, query[qi])  # noqa: E731
    print(f"  unpack + einsum    {timeit(unpack):.2f}  (signs already unpacked: "
          f"{timeit(lambda: np.einsum('ij,ij->i', signs, query[qi])):.2f})")  # fmt: skip


def embed_wiki(prefix: str) -> None:
    """Embed the Wikipedia slice's passages and titles; writes PREFIX.npy, PREFIX_articles.npy, PREFIX_titles.npy."""
    sys.path.insert(0, str(ROOT))
    from lshrs.cli import demo_dump
    from lshrs.embeddings import SentenceTransformerEmbedder
    from lshrs.passages import passages
    from lshrs.wikipedia import read_articles

    rows = list(passages(read_articles(demo_dump())))
    embed = SentenceTransformerEmbedder(batch_size=64)
    titles = {p.article_id: p.title for p in rows}
    np.save(f"{prefix}.npy", embed([p.embedding_text for p in rows]))
    np.save(f"{prefix}_articles.npy", np.array([p.article_id for p in rows]))
    np.save(f"{prefix}_titles.npy", embed(list(titles.values())))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vectors", type=Path, help="(n, d) float32 .npy of real embeddings")
    parser.add_argument("--groups", type=Path, help="(n,) .npy of article ids: truth skips the query's article")
    parser.add_argument("--queries", type=Path, help="(q, d) .npy of separate queries, e.g. embedded titles")
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["init", "ranking", "bits", "sample", "spill", "speed"]
    )
    parser.add_argument("--embed-wiki", metavar="PREFIX", help="embed gensim's Wikipedia slice to PREFIX*.npy, exit")
    args = parser.parse_args()
    if args.embed_wiki:
        return embed_wiki(args.embed_wiki)
    sets = [("synthetic 20k x 64, 200 clusters", split(synthetic()), 128, 8)]
    sets.append(("synthetic, spread 1.5", split(synthetic(spread=1.5)), 128, 8))
    if args.vectors:
        data = np.load(args.vectors).astype(np.float32)
        sets.append(("real, held-out passages", split(data), None, 8))
        if args.groups:
            sets.append(("real, other articles only", split(data, np.load(args.groups)), None, 8))
        if args.queries:
            sets.append(("real, title queries", with_queries(data, np.load(args.queries)), None, 8))
    for name, (base, queries, truth, sims), nlist, nprobe in sets:
        nlist = nlist or C.default_nlist(len(base))
        if "init" not in args.skip:
            section_init(name, base, queries, truth, sims, nlist, (1, 4, 8, 16))
        cen = C.Centroids.fit(base, nlist, seed=0)
        if "ranking" not in args.skip:
            for p in (nprobe, 2 * nprobe):
                section_ranking(name, base, queries, truth, sims, cen, p, DEPTHS)
        if "bits" not in args.skip:
            section_bits(name, sims, truth, base, queries, cen, 2 * nprobe, DEPTHS)
        if "sample" not in args.skip:
            section_sample(name, sims, truth, base, queries, nlist // 2, (2, 4, 8))
        if "spill" not in args.skip:
            section_spill(name, base, queries, truth, sims, cen, (2, 4, 8, 16, 32), 50)
    if "speed" not in args.skip:
        section_speed(q=1)
        section_speed(q=32, m=200_000)


if __name__ == "__main__":
    main()
