"""One commit against another in one run: benchmarks/core.py from both checkouts, alternately.

    .venv/bin/python benchmarks/ab.py --base 8b99326 [--rounds 2] [--n 30000] [--queries 100]

A refactor must not slow anything down, and this machine is shared and
noisy, so figures from different runs cannot be compared. This checks out
BASE in a temporary git worktree, then runs core.py from the base and from
this checkout in turn (base, head, base, head, ...), each in a fresh
process with its own Redis and Postgres, and reports the median of each
figure per side and the ratio head / base. Writes results/ab.json and ab.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
# (label, where in core.json, higher is better)
FIGURES = [
    ("bucket build vec/s", ("memory", "bucket_build_vectors_per_s"), True),
    ("Redis bytes/vector", ("memory", "packed_bytes_per_vector"), False),
]
STORE_FIGURES = [
    ("ingest vec/s", "ingest_vectors_per_s", True),
    ("query p50 ms", "query_p50_ms", False),
    ("query_many q/s", "query_many_qps", True),
    ("recall@10", "recall_at_10", True),
]


def run_core(tree: Path, n: int, queries: int) -> dict:
    """core.py of `tree` in a fresh process (it imports the lshrs of its own tree); its core.json."""
    cmd = [sys.executable, str(tree / "benchmarks" / "core.py"), "--n", str(n), "--queries", str(queries)]
    subprocess.run(cmd, cwd=tree, check=True, stdout=subprocess.DEVNULL)
    return json.loads((tree / "benchmarks" / "results" / "core.json").read_text())


def figures(report: dict) -> dict[str, float]:
    out = {label: float(report[a][b]) for label, (a, b), _ in FIGURES}
    for store in report["stores"]:
        for label, key, _ in STORE_FIGURES:
            out[f"{store['store']}: {label}"] = float(store[key])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", required=True, help="the commit to compare this checkout against")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--n", type=int, default=30_000)
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()
    base = subprocess.run(["git", "rev-parse", "--short", args.base], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    scratch = Path(tempfile.mkdtemp(prefix="lshrs-ab-"))
    old = scratch / "base"
    subprocess.run(["git", "worktree", "add", "--detach", str(old), base], cwd=ROOT, check=True, capture_output=True)
    head_results = ROOT / "benchmarks" / "results" / "core.json"
    kept = head_results.read_text() if head_results.exists() else None
    runs: dict[str, list[dict[str, float]]] = {"base": [], "head": []}
    try:
        for r in range(args.rounds):
            for side, tree in (("base", old), ("head", ROOT)):
                runs[side].append(figures(run_core(tree, args.n, args.queries)))
                print(f"round {r + 1} {side} done", flush=True)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, check=False)
        shutil.rmtree(scratch, ignore_errors=True)
        if kept is not None:  # core.py wrote its own results over the committed ones
            head_results.write_text(kept)
            (ROOT / "benchmarks" / "results" / "core.md").write_text(
                subprocess.run(["git", "show", "HEAD:benchmarks/results/core.md"], cwd=ROOT,
                               capture_output=True, text=True).stdout)  # fmt: skip
    better = {label: up for label, _, up in FIGURES} | {f": {label}": up for label, _, up in STORE_FIGURES}
    rows = []
    for label in runs["head"][0]:
        b = statistics.median(run[label] for run in runs["base"])
        h = statistics.median(run[label] for run in runs["head"])
        rows.append({"figure": label, "base": b, "head": h, "ratio": h / b if b else float("nan"),
                     "higher_is_better": next(up for key, up in better.items() if label.endswith(key))})  # fmt: skip
    report = {"base": base, "head": head, "rounds": args.rounds, "n": args.n, "queries": args.queries,
              "python": platform.python_version(), "rows": rows}  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ab.json").write_text(json.dumps(report, indent=2))
    (RESULTS / "ab.md").write_text(markdown(report))
    print((RESULTS / "ab.md").read_text())


def markdown(r: dict) -> str:
    lines = [
        f"# {r['head']} against {r['base']}: benchmarks/core.py, {r['rounds']} alternating rounds each",
        "",
        f"{r['n']:,} clustered synthetic 384-d vectors, {r['queries']} queries, Python {r['python']}, "
        "2 shared cores. Medians per side; ratio = head / base (above 1 is more, whichever way is better).",
        f"Reproduce: `.venv/bin/python benchmarks/ab.py --base {r['base']} --rounds {r['rounds']} --n {r['n']}`.",
        "",
        "| figure | base | head | head / base | better is |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for row in r["rows"]:
        lines.append(
            f"| {row['figure']} | {row['base']:,.3f} | {row['head']:,.3f} | {row['ratio']:.3f} "
            f"| {'higher' if row['higher_is_better'] else 'lower'} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
