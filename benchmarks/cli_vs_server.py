"""The same clip through `facecnn recognize clip.mp4 --json` and through a running
`facecnn serve`'s POST /v1/recognize: the same tracks, and how their times compare.

The people are found the way a user would: every 10th frame of the clip goes through
`facecnn cluster`, and `facecnn enroll` takes the clusters' folders as people. The clip is
then measured at --height (a 1080p copy by default, made with OpenCV), on 2 conditions: the
machine quiet, and one core kept busy by another process. Each condition starts from an empty
facecnn cache (so model conversions count, as on a new user's first run), then:

  server start   `facecnn serve` launched until /healthz answers (not in the ratio: a server
                 is started once);
  server 1st/2nd the clip posted to /v1/recognize, first request and second;
  CLI 1st/2nd    `facecnn recognize clip.mp4 --json` as a whole process, first run (empty
                 cache) and second;
  ratio          CLI time / server request time, first against first and second against
                 second (target: at most 1.25);
  same tracks    every track (name, score, distance, votes, shares, frames, times) and every
                 frame's faces equal between the CLI's JSON and the server's, apart from the
                 file name (a path against the upload's name) and the crop (never saved here).

    python benchmarks/cli_vs_server.py [--data ../shared/data/videos/hamilton.mp4]
        [--height 1080] [--conditions quiet,busy] [--out benchmarks/results/cli_vs_server.json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import httpx

from datapath import SHARED, require

HOST = "127.0.0.1"
FRAME_STEP = 10  # every 10th frame is a photo for finding the people
IGNORED = ("file", "crop")  # differ by design: a path against an upload's name


def facecnn(*args: str, env: dict[str, str], out: Path | None = None) -> float:
    """Run a facecnn command as a whole process; its wall time in seconds."""
    start = time.perf_counter()
    with open(out, "wb") if out else open(os.devnull, "wb") as sink:
        subprocess.run([sys.executable, "-m", "facecnn", *args], check=True, env=env,
                       stdout=sink, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def scaled_copy(video: Path, target: Path, height: int) -> Path:
    """The clip resized to `height` rows (aspect kept), or the clip itself for 0."""
    if height == 0:
        return video
    capture = cv2.VideoCapture(str(video))
    fps = capture.get(cv2.CAP_PROP_FPS)
    width = round(capture.get(cv2.CAP_PROP_FRAME_WIDTH) * height
                  / capture.get(cv2.CAP_PROP_FRAME_HEIGHT) / 2) * 2
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        writer.write(cv2.resize(frame, (width, height), interpolation=cv2.INTER_CUBIC))
    writer.release()
    capture.release()
    return target


def make_gallery(video: Path, work: Path, env: dict[str, str]) -> Path:
    frames = work / "frames"
    frames.mkdir()
    capture = cv2.VideoCapture(str(video))
    index = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if index % FRAME_STEP == 0:
            cv2.imwrite(str(frames / f"frame_{index:05d}.jpg"), frame)
        index += 1
    facecnn("cluster", str(frames), "--out", str(work / "library"), "--quiet", env=env)
    gallery = work / "clip.db"
    facecnn("enroll", str(work / "library"), "--gallery", str(gallery), "--quiet", env=env)
    return gallery


class Server:
    def __init__(self, gallery: Path, env: dict[str, str]) -> None:
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            port = sock.getsockname()[1]
        start = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "facecnn", "serve", "--gallery", str(gallery), "--host",
             HOST, "--port", str(port), "--max-upload-mb", "1000", "--max-video-seconds",
             "600", "--max-video-frames", "100000"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://{HOST}:{port}"
        for _ in range(1200):
            try:
                if httpx.get(f"{self.url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            self.close()
            sys.exit("the server did not start")
        self.started_s = time.perf_counter() - start

    def recognize(self, video: Path) -> tuple[float, dict]:
        start = time.perf_counter()
        answer = httpx.post(f"{self.url}/v1/recognize", timeout=3600,
                            files={"video": (video.name, video.read_bytes())})
        seconds = time.perf_counter() - start
        answer.raise_for_status()
        return seconds, answer.json()

    def close(self) -> None:
        self.process.terminate()
        self.process.wait()


def comparable(document: dict) -> dict:
    def strip(record: dict) -> dict:
        return {k: v for k, v in record.items() if k not in IGNORED}

    return {"tracks": [strip(t) for t in document["tracks"]],
            "frames": [strip(f) for f in document["frames"]]}


def busy_core() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def measure(condition: str, video: Path, gallery: Path, work: Path) -> dict:
    """One condition's row, each side from its own empty cache."""
    other = busy_core() if condition == "busy" else None
    try:
        server_env = {**os.environ, "FACECNN_CACHE_DIR": str(work / f"cache-server-{condition}")}
        cli_env = {**os.environ, "FACECNN_CACHE_DIR": str(work / f"cache-cli-{condition}")}
        server = Server(gallery, server_env)
        try:
            server_s = [server.recognize(video) for _ in range(2)]
        finally:
            server.close()
        cli_s, documents = [], []
        for run in range(2):
            out = work / f"cli-{condition}-{run}.json"
            cli_s.append(facecnn("recognize", str(video), "--gallery", str(gallery), "--json",
                                 env=cli_env, out=out))
            documents.append(json.loads(out.read_text()))
    finally:
        if other is not None:
            other.kill()
    same = all(comparable(d) == comparable(s) for d in documents for _, s in server_s)
    return {"condition": condition, "server_start_s": server.started_s,
            "server_s": [s for s, _ in server_s], "cli_s": cli_s,
            "ratio_first": cli_s[0] / server_s[0][0], "ratio_second": cli_s[1] / server_s[1][0],
            "tracks": len(documents[0]["tracks"]), "frames": len(documents[0]["frames"]),
            "same_tracks": same, "load": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=SHARED / "videos" / "hamilton.mp4",
                        help="The clip (a video with several people).")
    parser.add_argument("--height", type=int, default=1080,
                        help="Measure a copy this many rows high (0: the clip as it is).")
    parser.add_argument("--conditions", default="quiet,busy")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/cli_vs_server.json"))
    args = parser.parse_args()
    require(args.data, what="a video (hamilton.mp4)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = {**os.environ, "FACECNN_CACHE_DIR": str(work / "cache-setup")}
        gallery = make_gallery(args.data, work, env)
        video = scaled_copy(args.data, work / f"clip_{args.height}p.mp4", args.height)
        print(f"{'condition':<9} {'start':>6} {'srv 1st':>8} {'srv 2nd':>8} {'cli 1st':>8} "
              f"{'cli 2nd':>8} {'ratio 1st':>9} {'ratio 2nd':>9} {'tracks':>6} same", flush=True)
        for condition in args.conditions.split(","):
            row = measure(condition, video, gallery, work)
            rows.append(row)
            print(f"{condition:<9} {row['server_start_s']:6.1f} {row['server_s'][0]:8.1f} "
                  f"{row['server_s'][1]:8.1f} {row['cli_s'][0]:8.1f} {row['cli_s'][1]:8.1f} "
                  f"{row['ratio_first']:9.2f} {row['ratio_second']:9.2f} {row['tracks']:6d} "
                  f"{row['same_tracks']}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"cores": os.cpu_count(), "clip": str(args.data),
                                    "height": args.height, "rows": rows}, indent=2) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
