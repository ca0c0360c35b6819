"""Gallery stores compared: a SQLite file (the baseline) against a PostgreSQL database.

Part 1, the stores alone: enrol N random 128-d faces, FACES_PER_PERSON a person, one
transaction a person (as POST /v1/people writes them): faces/s; then load the live search
index (all rows read, the FAISS index built or taken from its cache: seconds), and name one
query at a time as a server answers a request (`Recognizer.name_embedded`: the threshold read
fresh, the index synced by the change counter, the search): p50/p99 ms. At 10k faces by
default; `--sizes 10000,1000000` adds a million (minutes: the IVF index takes one to build).

Part 2, whole servers: AT&T people enrolled into SQLite and copied to PostgreSQL with
`facecnn gallery copy`; then 1 `facecnn serve` on SQLite, and 1, 2 and 4 processes on the one
PostgreSQL database (each its own server, as separate machines behind a load balancer), with
--clients threads posting a photo to /v1/recognize round-robin over the servers for --seconds:
answered requests/s against the SQLite server. On a small machine the servers share its cores:
more processes add capacity only where there are cores to run them.

PostgreSQL: --postgres URL (a database you may create schemas in; the benchmark makes and
drops its own), else a throwaway server started as the tests start one (tests/pg_cluster.py:
PostgreSQL's initdb and pg_ctl must be installed).

    python benchmarks/gallery_backends.py [--sizes 10000] [--postgres URL] [--data ATT]
        [--servers 1,2,4] [--clients 8] [--seconds 20] [--out F]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Callable, Iterator

import httpx
import numpy as np

from datapath import ATT_FACES, ATT_FACES_HELP, require
from facecnn.faces.detect import FaceDetector
from facecnn.faces.embedders import Embedder, create_embedder
from facecnn.faces.gallery import Gallery
from facecnn.faces.recognize import Recognizer
from facecnn.faces.result import Face
from serve_load import photo

DIM = 128
FACES_PER_PERSON = {10_000: 10, 1_000_000: 1000}  # people of 10 faces; 1,000 people at 1M
QUERIES = 300
PEOPLE = [f"s{i}" for i in range(1, 11)]
HOST = "127.0.0.1"
RESULTS = Path(__file__).with_name("results") / "gallery_backends.json"
TIMEOUT_S = 120
START_LIMIT = 300  # seconds a server may take to answer /healthz (a hung one fails)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@contextmanager
def postgres(url: str | None) -> Iterator[Callable[[], str]]:
    """A factory of URLs of fresh, empty schemas on `url`'s database or a throwaway server;
    the schemas are dropped afterwards."""
    import psycopg

    with ExitStack() as stack:
        if url is None:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
            from pg_cluster import GALLERIES, Cluster

            cluster = Cluster()
            stack.callback(cluster.destroy)
            os.environ["PGPASSWORD"] = cluster.password
            url = cluster.url(GALLERIES)
        made: list[str] = []

        def fresh() -> str:
            name = f"facecnn_bench_{os.getpid()}_{len(made)}"
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"CREATE SCHEMA {name}")
            made.append(name)
            return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{name}"

        try:
            yield fresh
        finally:
            with psycopg.connect(url, autocommit=True) as conn:
                for name in made:
                    conn.execute(f"DROP SCHEMA {name} CASCADE")


def store_run(location: str, size: int, detector: FaceDetector, embedder: Embedder) -> dict:
    """Enrol `size` faces, load the live index, time one-query answers."""
    rng = np.random.default_rng(0)
    per = FACES_PER_PERSON.get(size, 10)
    centres = unit(rng.normal(size=(size // per, DIM)))
    with Gallery.create(location, "dlib", DIM) as gallery:
        start = time.perf_counter()
        for i, centre in enumerate(centres):
            gallery.add(f"p{i:07d}", unit(centre + 0.03 * rng.normal(size=(per, DIM))))
        enrol_s = time.perf_counter() - start
        gallery.set_threshold(0.6, "manual")
        start = time.perf_counter()
        recognizer = Recognizer(gallery=gallery, detector=detector, embedder=embedder,
                                workers=1)
        load_s = time.perf_counter() - start
        queries = unit(centres[rng.integers(0, len(centres), QUERIES)]
                       + 0.02 * rng.normal(size=(QUERIES, DIM)))
        times = []
        for q in queries:
            start = time.perf_counter()
            recognizer.name_embedded([Face((0, 0, 1, 1), vector=q)])
            times.append(time.perf_counter() - start)
    return {"faces": size, "enrol_faces_per_s": size / enrol_s, "index_load_s": load_s,
            "identify_p50_ms": float(np.percentile(times, 50) * 1e3),
            "identify_p99_ms": float(np.percentile(times, 99) * 1e3),
            "index": recognizer.index.kind}


def enrolled_galleries(att: Path, work: Path, new_pg: Callable[[], str]) -> tuple[str, str]:
    """A SQLite gallery of PEOPLE enrolled by the CLI, and its copy in PostgreSQL."""
    people = work / "people"
    for person in PEOPLE:
        (people / person).mkdir(parents=True)
        for i in (1, 2, 3):
            (people / person / f"{i}.jpg").write_bytes(photo(att, person, i))
    sqlite, url = str(work / "g.db"), new_pg()
    for args in (["enroll", str(people), "--gallery", sqlite, "--quiet"],
                 ["gallery", "copy", sqlite, url]):
        subprocess.run([sys.executable, "-m", "facecnn", *args], check=True,
                       capture_output=True)
    return sqlite, url


@contextmanager
def servers(gallery: str, count: int, work: Path) -> Iterator[list[str]]:
    """`count` separate `facecnn serve` processes on `gallery`, each on its own port and its
    share of the cores; yields their base URLs once all answer /healthz."""
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // count))}
    procs, bases = [], []
    for _ in range(count):
        with socket_port() as port:
            bases.append(f"http://{HOST}:{port}")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "facecnn", "serve", "--gallery", gallery, "--host", HOST,
             "--port", bases[-1].rsplit(":", 1)[1]], cwd=work, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        for base, proc in zip(bases, procs):
            deadline = time.time() + START_LIMIT
            while proc.poll() is None and time.time() < deadline:
                try:
                    if httpx.get(f"{base}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            else:
                raise SystemExit(f"error: a server on {gallery} did not start")
        yield bases
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(TIMEOUT_S)


@contextmanager
def socket_port() -> Iterator[int]:
    import socket

    with socket.socket() as sock:
        sock.bind((HOST, 0))
        yield sock.getsockname()[1]


def load(bases: list[str], image: bytes, clients: int, seconds: float) -> dict:
    """Answered requests/s of `clients` threads posting `image` round-robin over `bases`."""
    done, errors = [0] * clients, [0] * clients
    stop = time.perf_counter() + seconds

    def client(me: int) -> None:
        with httpx.Client(timeout=TIMEOUT_S) as http:
            turn = me
            while time.perf_counter() < stop:
                answer = http.post(f"{bases[turn % len(bases)]}/v1/recognize",
                                   files={"image": ("q.jpg", image)})
                turn += 1
                if answer.status_code == 200 and answer.json()["faces"]:
                    done[me] += 1
                else:
                    errors[me] += 1

    for base in bases:  # warm-up: first answers load lazily
        httpx.post(f"{base}/v1/recognize", files={"image": ("q.jpg", image)},
                   timeout=TIMEOUT_S)
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"requests_per_s": sum(done) / (time.perf_counter() - start),
            "failed": sum(errors)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000", help="Gallery sizes (faces), e.g. "
                        "10000,1000000.")
    parser.add_argument("--postgres", default=None, help="A PostgreSQL database URL (default: "
                        "a throwaway server).")
    parser.add_argument("--data", type=Path, default=ATT_FACES, help=ATT_FACES_HELP)
    parser.add_argument("--servers", default="1,2,4", help="PostgreSQL server process counts "
                        "('' skips part 2).")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    counts = [int(n) for n in args.servers.split(",") if n]
    if counts:
        require(args.data, what=ATT_FACES_HELP)
    # never called (the store runs hand over vectors); loaded once, outside the timings
    detector, embedder = FaceDetector("hog"), create_embedder("dlib")
    results: dict = {"stores": [], "servers": []}
    with postgres(args.postgres) as new_pg, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["FACECNN_CACHE_DIR"] = str(work / "cache")  # index caches go with the run
        for size in (int(s) for s in args.sizes.split(",")):
            base = {"store": "sqlite", **store_run(str(work / f"g{size}.db"), size, detector,
                                                   embedder)}
            other = {"store": "postgresql", **store_run(new_pg(), size, detector, embedder)}
            other["enrol_vs_sqlite"] = other["enrol_faces_per_s"] / base["enrol_faces_per_s"]
            other["p50_vs_sqlite"] = other["identify_p50_ms"] / base["identify_p50_ms"]
            results["stores"] += [base, other]
            print_stores(results["stores"][-2:])
        if counts:
            sqlite, url = enrolled_galleries(args.data, work, new_pg)
            image = photo(args.data, PEOPLE[0], 8)
            for store, gallery, count in [("sqlite", sqlite, 1)] + [
                    ("postgresql", url, n) for n in counts]:
                with servers(gallery, count, work) as bases:
                    row = {"store": store, "servers": count,
                           **load(bases, image, args.clients, args.seconds)}
                results["servers"].append(row)  # the first: SQLite, the baseline
                row["vs_sqlite"] = row["requests_per_s"] / results["servers"][0][
                    "requests_per_s"]
                print(f"{store:10s} {count} server(s): {row['requests_per_s']:6.1f} req/s "
                      f"(x{row['vs_sqlite']:.2f} vs SQLite), {row['failed']} failed",
                      flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"cpus": os.cpu_count(), **results}, indent=2))
    print(f"wrote {args.out}")


def print_stores(rows: list[dict]) -> None:
    for row in rows:
        ratio = (f" (enrol x{row['enrol_vs_sqlite']:.2f}, p50 x{row['p50_vs_sqlite']:.2f} vs "
                 f"SQLite)" if "enrol_vs_sqlite" in row else "")
        print(f"{row['store']:10s} {row['faces']:>9,} faces ({row['index']}): enrol "
              f"{row['enrol_faces_per_s']:9,.0f} faces/s, index load {row['index_load_s']:6.2f}"
              f" s, identify p50 {row['identify_p50_ms']:6.3f} ms p99 "
              f"{row['identify_p99_ms']:6.3f} ms{ratio}", flush=True)


if __name__ == "__main__":
    main()
