"""Gallery search latency: facecnn's FAISS index against numpy brute force.

Random unit vectors stand in for a gallery (no SQLite: the index is built by index.py's own
`build_index` and searched through `GalleryIndex.search`, re-ranking included). Queries are
perturbed gallery vectors (about 0.5 from their source, like a fresh photo of an enrolled
face), so every query has a true nearest neighbour. Latency is one query per call, as a
camera feed asks; recall@1 is against exact brute force.

    python benchmarks/gallery_search.py --sizes 10000,100000,1000000 --dim 128 --json out.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from facecnn.faces.index import EXACT_LIMIT, GalleryIndex, build_index

_BLOCK = 100_000  # gallery rows per block when computing the exact answers
_WARMUP = 20


def unit(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def exact_nearest(gallery: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Row of each query's nearest gallery vector, in blocks to bound memory."""
    best = np.full(len(queries), -np.inf, dtype=np.float32)
    rows = np.zeros(len(queries), dtype=np.int64)
    for start in range(0, len(gallery), _BLOCK):
        block = gallery[start:start + _BLOCK]
        score = 2 * (queries @ block.T) - (block * block).sum(1)  # -distance^2 + |q|^2
        j = score.argmax(1)
        top = score[np.arange(len(queries)), j]
        better = top > best
        best[better], rows[better] = top[better], start + j[better]
    return rows


def brute_force_p50_ms(gallery: np.ndarray, queries: np.ndarray) -> float:
    """Median milliseconds per query of the numpy baseline (a matrix-vector product, argmax
    of -distance), with BLAS on one thread and on all, whichever is faster: on 2 cores a
    threaded matrix-vector product can stall for milliseconds waking its threads."""
    norms = (gallery * gallery).sum(1)
    medians = []
    for threads in (1, None):
        with threadpool_limits(threads, user_api="blas"):
            times = []
            for q in queries:
                start = time.perf_counter()
                int(np.argmax(2 * (gallery @ q) - norms))
                times.append(time.perf_counter() - start)
        medians.append(np.median(times) * 1e3)
    return float(min(medians))


def run(size: int, dim: int, n_queries: int, baseline_queries: int, exact_limit: int,
        nprobe: int | None, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    gallery = unit(rng.standard_normal((size, dim), dtype=np.float32))
    sources = rng.choice(size, n_queries, replace=False)
    noise = rng.standard_normal((n_queries, dim), dtype=np.float32) * (0.5 / dim**0.5)
    queries = unit(gallery[sources] + noise)
    truth = exact_nearest(gallery, queries)
    baseline_ms = brute_force_p50_ms(gallery, queries[:baseline_queries])

    names = [f"{i:09d}" for i in range(size)]  # one person per vector, sorted like rows
    start = time.perf_counter()
    index = GalleryIndex(build_index(gallery, exact_limit), np.arange(size), names, nprobe)
    build_seconds = time.perf_counter() - start

    for q in queries[:_WARMUP]:  # untimed: first calls pay for allocations and thread wake-ups
        index.search(q[None])
    found, times = [], []
    for q in queries:
        start = time.perf_counter()
        _, who = index.search(q[None])
        times.append(time.perf_counter() - start)
        found.append(who[0, 0])
    times_ms = np.array(times) * 1e3
    return {"size": size, "dim": dim, "kind": index.kind,
            "p50_ms": round(float(np.percentile(times_ms, 50)), 3),
            "p99_ms": round(float(np.percentile(times_ms, 99)), 3),
            "recall_at_1": float(np.mean(np.array(found) == np.array(names)[truth])),
            "baseline_p50_ms": round(baseline_ms, 3),
            "build_seconds": round(build_seconds, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000",
                        help="comma-separated gallery sizes")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--baseline-queries", type=int, default=100,
                        help="queries timed for brute force (slow at 1M)")
    parser.add_argument("--exact-limit", type=int, default=EXACT_LIMIT)
    parser.add_argument("--nprobe", type=int, default=None, help="IVF lists searched per query")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    args = parser.parse_args()

    rows = []
    header = (f"{'size':>9} {'kind':>5} {'p50 ms':>8} {'p99 ms':>8} {'recall@1':>9} "
              f"{'numpy p50 ms':>13} {'build s':>8}")
    print(header)
    for size in map(int, args.sizes.split(",")):
        r = run(size, args.dim, args.queries, args.baseline_queries, args.exact_limit,
                args.nprobe, args.seed)
        rows.append(r)
        print(f"{r['size']:>9} {r['kind']:>5} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} "
              f"{r['recall_at_1']:>9.4f} {r['baseline_p50_ms']:>13.3f} "
              f"{r['build_seconds']:>8.1f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
