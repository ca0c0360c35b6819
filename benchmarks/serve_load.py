"""Service load: concurrent clients recognizing a real face photo against a local server.

Starts `facecnn serve` on 127.0.0.1 with a gallery of AT&T people, then for each client count
runs that many threads posting the same photo to /v1/recognize for --seconds, and reports
requests/s, p50/p99 latency, non-2xx and 5xx counts, and the server's resident memory
(all its processes) before and after (growth would mean a leak). With `--workers 1,2` the
whole table is repeated for each server process count, speed given against one process.

    python benchmarks/serve_load.py [--clients 20,50] [--workers 1,2] [--seconds 60] [--out F]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ATT = Path(__file__).resolve().parents[2] / "shared" / "data" / "att_faces"
KEY = "load-test-key-0123456789"


def photo(person: str, index: int) -> bytes:
    """An AT&T face pasted into a 200 x 200 grey canvas, as JPEG bytes."""
    canvas = Image.new("RGB", (200, 200), (90, 90, 90))
    canvas.paste(Image.open(ATT / person / f"{index}.pgm").convert("RGB"), (54, 44))
    buffer = io.BytesIO()
    canvas.save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (uvicorn's worker processes)."""
    total = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            total += int(line.split()[1]) / 1024
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            total += rss_mb(int(child))
    return total


def make_gallery(work: Path) -> None:
    people = work / "people"
    for person in ("s1", "s2", "s3", "s4", "s5"):
        (people / person).mkdir(parents=True)
        for i in (1, 2, 3):
            (people / person / f"{i}.jpg").write_bytes(photo(person, i))
    subprocess.run([sys.executable, "-m", "facecnn", "enroll", str(people), "--gallery",
                    str(work / "g.db"), "--quiet"], check=True, capture_output=True)
    (work / "keys.txt").write_text(f"{KEY} read\n")


def start_server(work: Path, workers: int, embedder: str | None) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "facecnn", "serve", "--gallery",
                               str(work / "g.db"), "--host", "127.0.0.1", "--port", str(port),
                               "--api-key-file", str(work / "keys.txt"), "--workers",
                               str(workers), *(["--embedder", embedder] if embedder else [])],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                return server, url
        except httpx.TransportError:
            time.sleep(0.2)
    server.kill()
    sys.exit("the server did not start")


def load(url: str, clients: int, seconds: float, image: bytes) -> dict:
    latencies: list[float] = []
    statuses: list[int] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def client() -> None:
        with httpx.Client(base_url=url, timeout=120, headers={"x-api-key": KEY}) as http:
            while time.perf_counter() < stop:
                start = time.perf_counter()
                try:
                    status = http.post("/v1/recognize", files={"image": ("a.jpg", image)}
                                       ).status_code
                except httpx.TransportError:
                    status = 599
                with lock:
                    latencies.append((time.perf_counter() - start) * 1000)
                    statuses.append(status)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    codes = np.array(statuses)
    return {"clients": clients, "requests": len(codes), "requests_per_s": len(codes) / elapsed,
            "p50_ms": float(np.percentile(latencies, 50)),
            "p99_ms": float(np.percentile(latencies, 99)),
            "non_2xx": int(((codes < 200) | (codes >= 300)).sum()),
            "errors_5xx": int((codes >= 500).sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="20,50")
    parser.add_argument("--workers", default="1", help="server processes, e.g. 1,2")
    parser.add_argument("--embedder", help="search the dlib gallery with e.g. dlib_torch")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/serve_load.json"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="facecnn-load-"))
    make_gallery(work)
    rows = []
    try:
        image = photo("s2", 8)
        for workers in (int(w) for w in args.workers.split(",")):
            server, url = start_server(work, workers, args.embedder)
            try:
                for clients in (int(c) for c in args.clients.split(",")):
                    before = rss_mb(server.pid)
                    row = load(url, clients, args.seconds, image)
                    row.update(workers=workers, embedder=args.embedder or "dlib",
                               rss_before_mb=before,
                               rss_after_mb=rss_mb(server.pid))
                    rows.append(row)
            finally:
                server.terminate()
                server.wait(timeout=30)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for row in rows:
        one = [r for r in rows if r["workers"] == 1 and r["clients"] == row["clients"]]
        row["speed_vs_1_worker"] = row["requests_per_s"] / one[0]["requests_per_s"] if one \
            else None
    print(f"POST /v1/recognize, one 200x200 face photo, {os.cpu_count()} cores, "
          f"{args.seconds:g} s per row, embedder {args.embedder or 'dlib'}")
    print(f"{'workers':>8}{'clients':>8}{'requests':>10}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}"
          f"{'5xx':>5}{'RSS before':>12}{'RSS after':>11}{'x 1 worker':>11}")
    for r in rows:
        speed = f"{r['speed_vs_1_worker']:.2f}" if r["speed_vs_1_worker"] else "-"
        print(f"{r['workers']:>8}{r['clients']:>8}{r['requests']:>10}{r['requests_per_s']:>8.1f}"
              f"{r['p50_ms']:>9.0f}{r['p99_ms']:>9.0f}{r['non_2xx']:>9}{r['errors_5xx']:>5}"
              f"{r['rss_before_mb']:>11.0f}M{r['rss_after_mb']:>10.0f}M{speed:>11}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
