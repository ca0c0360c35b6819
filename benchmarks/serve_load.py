"""Service load: many clients recognizing a real face photo while an admin enrols and removes
someone and slow uploaders hold connections open, against a local server.

Starts `facecnn serve` on 127.0.0.1 with a gallery of AT&T people, then for each client count
and slow-uploader count runs, for --seconds: that many threads posting the same photo to
/v1/recognize (waiting as Retry-After says after a 503); one thread enrolling a person and
removing them again, over and over; one thread probing /healthz every 50 ms; and the slow
uploaders, each declaring a 100 kB upload with a read key and sending one byte every 2 s
(reconnecting when the server cuts it off with 408 after --upload-timeout). Reports answered
requests/s, their p50/p99 latency, /healthz p99, non-2xx answers with 503 (queue full: by
design, with Retry-After) apart from other 5xx (errors), enrolments and removals answered,
the slow uploaders' connections and 408s, and the server's resident memory (all its
processes) after a warm-up and after the run (growth would mean a leak). With `--workers 1,2`
the whole table is repeated for each server process count, speed given against one process.
Targets: no 5xx, /healthz p99 under 100 ms, recognize p99 bounded by the queue (--max-queue),
every admin call answered, recognitions answered as fast with slow uploaders as without,
memory flat.

    python benchmarks/serve_load.py [--data ../shared/data/att_faces] [--clients 50]
        [--slow-uploaders 0,30] [--workers 1,2] [--seconds 60] [--out F]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from datapath import ATT_FACES, ATT_FACES_HELP, require

READ_KEY, ADMIN_KEY = "load-test-read-key-0123456789", "load-test-admin-key-0123456789"
HOST = "127.0.0.1"
PROBE_EVERY_S = 0.05
TIMEOUT_S = 120  # no request waits longer: a run ends within --seconds + this
MAX_RETRY_AFTER_S = 5
WARMUP_REQUESTS = 20
SLOW_BYTE_EVERY_S = 2.0
SLOW_DECLARED = 100_000  # bytes a slow uploader says it will send


def photo(att: Path, person: str, index: int) -> bytes:
    """An AT&T face pasted into a 200 x 200 grey canvas, as JPEG bytes."""
    canvas = Image.new("RGB", (200, 200), (90, 90, 90))
    canvas.paste(Image.open(att / person / f"{index}.pgm").convert("RGB"), (54, 44))
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


def make_gallery(work: Path, att: Path) -> None:
    people = work / "people"
    for person in ("s1", "s2", "s3", "s4", "s5"):
        (people / person).mkdir(parents=True)
        for i in (1, 2, 3):
            (people / person / f"{i}.jpg").write_bytes(photo(att, person, i))
    subprocess.run([sys.executable, "-m", "facecnn", "enroll", str(people), "--gallery",
                    str(work / "g.db"), "--quiet"], check=True, capture_output=True)
    (work / "keys.txt").write_text(f"{READ_KEY} read\n{ADMIN_KEY} admin\n")


def start_server(work: Path, workers: int, embedder: str | None, max_queue: int | None,
                 upload_timeout: float | None) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "facecnn", "serve", "--gallery",
                               str(work / "g.db"), "--host", HOST, "--port", str(port),
                               "--api-key-file", str(work / "keys.txt"), "--workers",
                               str(workers), *(["--embedder", embedder] if embedder else []),
                               *(["--max-queue", str(max_queue)] if max_queue is not None
                                 else []),
                               *(["--upload-timeout", str(upload_timeout)] if upload_timeout
                                 else [])],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://{HOST}:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                return server, url
        except httpx.TransportError:
            time.sleep(0.2)
    server.kill()
    sys.exit("the server did not start")


@dataclass
class Calls:
    """Latencies (ms) and status codes of one kind of call, from any number of threads."""

    latencies: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def time(self, call) -> None:
        """Make the call; after a 503 wait what its Retry-After says, as a polite client does."""
        start = time.perf_counter()
        try:
            answer = call()
            status = answer.status_code
        except httpx.TransportError:
            status = 599  # no answer at all: counted with the 5xx
        with self.lock:
            self.latencies.append((time.perf_counter() - start) * 1000)
            self.statuses.append(status)
        if status == 503:
            time.sleep(min(float(answer.headers.get("retry-after", 1)), MAX_RETRY_AFTER_S))

    def p(self, q: float) -> float:
        """Latency percentile of the calls answered 2xx (a 503 is answered at once)."""
        codes = np.array(self.statuses)
        served = np.array(self.latencies)[(codes >= 200) & (codes < 300)]
        return float(np.percentile(served, q)) if served.size else float("nan")

    def counts(self) -> dict[str, int]:
        codes = np.array(self.statuses, dtype=int)
        return {"non_2xx": int(((codes < 200) | (codes >= 300)).sum()),
                "busy_503": int((codes == 503).sum()),
                "errors_5xx": int(((codes >= 500) & (codes != 503)).sum())}


@dataclass
class SlowUploads:
    """What the slow uploaders saw: connections opened, and the answers the server sent."""

    connections: int = 0
    answers: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, url: str, stop: float) -> None:
        """Dribble uploads, one byte every SLOW_BYTE_EVERY_S, until `stop`; reconnect when the
        server answers (408) or closes."""
        address = httpx.URL(url)
        head = (f"POST /v1/recognize HTTP/1.1\r\nHost: {address.host}:{address.port}\r\n"
                f"x-api-key: {READ_KEY}\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                f"Content-Length: {SLOW_DECLARED}\r\n\r\n").encode()
        while time.perf_counter() < stop:
            try:
                with socket.create_connection((address.host, address.port), timeout=10) as conn:
                    conn.sendall(head)
                    with self.lock:
                        self.connections += 1
                    while time.perf_counter() < stop:
                        if select.select([conn], [], [], SLOW_BYTE_EVERY_S)[0]:
                            status = conn.recv(64).split(b"\r\n", 1)[0].split()
                            with self.lock:
                                self.answers.append(int(status[1]) if len(status) > 1 else 0)
                            break
                        conn.sendall(b"x")
            except OSError:
                time.sleep(0.1)  # cut off: dribble again

    def count(self, status: int) -> int:
        return sum(answer == status for answer in self.answers)


def load(url: str, clients: int, slow: int, seconds: float, image: bytes,
         visitor: list[bytes]) -> dict:
    recognize, healthz, admin = Calls(), Calls(), Calls()
    slow_uploads = SlowUploads()
    stop = time.perf_counter() + seconds

    def client() -> None:
        with httpx.Client(base_url=url, timeout=TIMEOUT_S,
                          headers={"x-api-key": READ_KEY}) as http:
            while time.perf_counter() < stop:
                recognize.time(lambda: http.post("/v1/recognize",
                                                 files={"image": ("a.jpg", image)}))

    def enrol_and_remove() -> None:
        files = [("images", (f"{i}.jpg", data)) for i, data in enumerate(visitor)]
        with httpx.Client(base_url=url, timeout=TIMEOUT_S,
                          headers={"x-api-key": ADMIN_KEY}) as http:
            while time.perf_counter() < stop:
                admin.time(lambda: http.post("/v1/people/visitor", files=files))
                admin.time(lambda: http.delete("/v1/people/visitor"))

    def probe() -> None:
        with httpx.Client(base_url=url, timeout=TIMEOUT_S) as http:
            while time.perf_counter() < stop:
                healthz.time(lambda: http.get("/healthz"))
                time.sleep(PROBE_EVERY_S)

    threads = [threading.Thread(target=slow_uploads.run, args=(url, stop)) for _ in range(slow)]
    threads += [threading.Thread(target=client) for _ in range(clients)]
    threads += [threading.Thread(target=enrol_and_remove), threading.Thread(target=probe)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    served = len(recognize.statuses) - recognize.counts()["non_2xx"]
    admin_answered = sum(200 <= code < 300 for code in admin.statuses)
    return {"clients": clients, "slow_uploaders": slow, "requests": len(recognize.statuses),
            "requests_per_s": served / elapsed,
            "p50_ms": recognize.p(50), "p99_ms": recognize.p(99), **recognize.counts(),
            "healthz_p99_ms": healthz.p(99), "healthz_max_ms": max(healthz.latencies),
            "healthz_errors": healthz.counts()["non_2xx"],
            "admin_calls": len(admin.statuses), "admin_2xx": admin_answered,
            "admin_errors_5xx": admin.counts()["errors_5xx"],
            "admin_busy_503": admin.counts()["busy_503"],
            "slow_connections": slow_uploads.connections,
            "slow_408": slow_uploads.count(408),
            "slow_other_answers": len(slow_uploads.answers) - slow_uploads.count(408)}


def warm_up(url: str, image: bytes, visitor: list[bytes]) -> None:
    """A few calls of every kind first, so the memory measured before a run has the caches
    and thread arenas that any first requests make, and growth during the run means a leak."""
    with httpx.Client(base_url=url, timeout=TIMEOUT_S) as http:
        for _ in range(WARMUP_REQUESTS):
            http.post("/v1/recognize", files={"image": ("a.jpg", image)},
                      headers={"x-api-key": READ_KEY})
        http.post("/v1/people/visitor", headers={"x-api-key": ADMIN_KEY},
                  files=[("images", (f"{i}.jpg", data)) for i, data in enumerate(visitor)])
        http.delete("/v1/people/visitor", headers={"x-api-key": ADMIN_KEY})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ATT_FACES, help=ATT_FACES_HELP)
    parser.add_argument("--clients", default="50", help="client counts, e.g. 20,50")
    parser.add_argument("--slow-uploaders", default="0,30",
                        help="slow uploader counts, each a row, e.g. 0,30")
    parser.add_argument("--upload-timeout", type=float, help="the server's --upload-timeout")
    parser.add_argument("--workers", default="1", help="server processes, e.g. 1,2")
    parser.add_argument("--embedder", help="search the dlib gallery with e.g. dlib")
    parser.add_argument("--max-queue", type=int, help="the server's --max-queue")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/serve_load.json"))
    args = parser.parse_args()
    require(args.data, what=ATT_FACES_HELP)
    work = Path(tempfile.mkdtemp(prefix="facecnn-load-"))
    make_gallery(work, args.data)
    rows = []
    try:
        image = photo(args.data, "s2", 8)
        visitor = [photo(args.data, "s6", 1), photo(args.data, "s6", 2)]
        for workers in (int(w) for w in args.workers.split(",")):
            server, url = start_server(work, workers, args.embedder, args.max_queue,
                                       args.upload_timeout)
            try:
                warm_up(url, image, visitor)
                for clients, slow in ((int(c), int(s)) for c in args.clients.split(",")
                                      for s in args.slow_uploaders.split(",")):
                    before = rss_mb(server.pid)
                    row = load(url, clients, slow, args.seconds, image, visitor)
                    row.update(workers=workers, embedder=args.embedder or "default",
                               rss_before_mb=before, rss_after_mb=rss_mb(server.pid))
                    rows.append(row)
            finally:
                server.terminate()
                server.wait(timeout=30)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for row in rows:
        one = [r for r in rows if r["workers"] == 1 and r["clients"] == row["clients"]
               and r["slow_uploaders"] == row["slow_uploaders"]]
        row["speed_vs_1_worker"] = row["requests_per_s"] / one[0]["requests_per_s"] if one \
            else None
    print(f"POST /v1/recognize, one 200x200 face photo, with an enrol/remove loop, a /healthz "
          f"probe and slow uploaders (a byte every {SLOW_BYTE_EVERY_S:g} s); "
          f"{os.cpu_count()} cores, {args.seconds:g} s per row, embedder "
          f"{args.embedder or 'default'}")
    columns = ("workers", "clients", "slow", "requests", "2xx/s", "p50 ms", "p99 ms", "503",
               "5xx", "non-2xx", "healthz p99", "admin calls", "admin 2xx", "admin 5xx",
               "slow conns", "slow 408", "RSS before", "RSS after", "x 1 worker")
    print(" ".join(f"{c:>11}" for c in columns))
    for r in rows:
        speed = f"{r['speed_vs_1_worker']:.2f}" if r["speed_vs_1_worker"] else "-"
        cells = (r["workers"], r["clients"], r["slow_uploaders"], r["requests"],
                 f"{r['requests_per_s']:.1f}", f"{r['p50_ms']:.0f}", f"{r['p99_ms']:.0f}",
                 r["busy_503"], r["errors_5xx"], r["non_2xx"], f"{r['healthz_p99_ms']:.1f}",
                 r["admin_calls"], r["admin_2xx"], r["admin_errors_5xx"],
                 r["slow_connections"], r["slow_408"], f"{r['rss_before_mb']:.0f}M",
                 f"{r['rss_after_mb']:.0f}M", speed)
        print(" ".join(f"{c:>11}" for c in cells))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
