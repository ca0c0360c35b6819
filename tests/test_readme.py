"""Every shell block of README.md runs as a user would type it.

The README's shell blocks (```bash: test_readme_links.py holds it to that one convention, and
checks its links) run in README order in one prepared work folder, each as a real
`bash -eu -o pipefail` process with this venv's `facecnn` first on PATH, so a later block sees
what an earlier one made (the gallery `enroll` wrote, say), as a reader following the README
would. The folder holds what the README's examples name (`prepare_workspace`):

    photos/   3 people of ../shared/data/lfw_dev, their first 4 photos each
    group.jpg two faces side by side: another photo of an enrolled person, and a stranger
    faces/    5 AT&T people (../shared/data/att_faces), 10 photos each, as 96 px JPEGs
    clip.mp4  the first second (30 frames) of ../shared/data/videos/hamilton.mp4

What runs differs from the README's text only by SUBSTITUTIONS (each must still match it, so
none goes stale unseen), and three kinds of block are not run as they stand:

- `pip install ...`: checked, not repeated (minutes, and it would change the venv the tests
  run in). The user install must be `pip install -e .` (tests/test_install.py checks that it
  covers every import) and this checkout must be what is installed, editable; the test install
  must be the one .ci/run makes, and every package of the `test` extra must be present.
- `facecnn serve ...`: started in the background; the next block (the README's client, "in
  another terminal") runs once /healthz answers, then the server is stopped.
- `python -m pytest ...`: run in the repository, not the work folder. The command CI runs
  (.ci/run's) is not run here: it would run this file inside itself, for six minutes, and CI
  runs it anyway. Any other (the fast tier) runs with `--collect-only` and two files
  appended (`check_pytest`): its selection is checked, not its tests.

About a minute on 2 cores: mostly the `facecnn` processes starting and loading their models.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Callable

import httpx
import pytest
import tomllib
from PIL import Image

from helpers import HANG_GUARD, free_port, make_jpeg_tree
from readme_markdown import CI, ROOT, Block, ci_test_command, shell_blocks

pytestmark = pytest.mark.e2e

SHARED = ROOT.parent / "shared" / "data"

# README text -> what the test runs instead, and why. {port} is a free port; {pg} the URL of
# a new, empty schema on the session's throwaway PostgreSQL (tests/pg_cluster.py), quoted.
SUBSTITUTIONS: list[tuple[str, str, str]] = [
    ("--epochs 40", "--epochs 2",
     "the README shows a whole run; 2 epochs show that the command works, in seconds"),
    ("facecnn serve --gallery team.db", "facecnn serve --gallery team.db --port {port}",
     "port 8000 may be taken where the tests run"),
    ("localhost:8000", "localhost:{port}", "the same server, on that port"),
    ("postgresql://facecnn@db.local/faces", "{pg}",
     "a real PostgreSQL: the throwaway server the shared-gallery tests start"),
]


# What a block must print or leave, beyond exit status 0, by the start of one of its commands
# (each must match some command). Not the JSON shapes: other tests hold those.
def _enrolled(work: Path, out: str, err: str) -> None:
    assert "enrolled 12 new faces of 3 people" in out + err, out + err
    assert (work / "team.db").is_file()


def _recognized(work: Path, out: str, err: str) -> None:
    assert "Jackie_Chan" in out and "unknown" in out, out


def _trained(work: Path, out: str, err: str) -> None:
    assert "results in runs/train/exp" in out + err, out + err
    assert (work / "runs" / "train" / "exp" / "model.safetensors").is_file()


def _clustered(work: Path, out: str, err: str) -> None:
    clusters = json.loads((work / "people" / "clusters.json").read_text())
    assert clusters, out + err
    assert (work / "people" / "index.html").is_file()
    assert (work / "people" / clusters[0]["cluster"]).is_dir()


def _tracked(work: Path, out: str, err: str) -> None:
    assert "in 30 frames" in out + err, out + err
    events = (work / "events.csv").read_text().splitlines()
    assert events[0].startswith("event,") and any(e.startswith("appeared,") for e in events)


def _served(work: Path, out: str, err: str) -> None:
    names = [face["name"] for face in json.loads(out)["faces"]]
    assert "Jackie_Chan" in names and "unknown" in names, out


def _listed(work: Path, out: str, err: str) -> None:
    assert all(person in out for person in ("Hugh_Grant", "Jackie_Chan", "Salma_Hayek")), out


def _embedders(work: Path, out: str, err: str) -> None:
    assert all(name in out for name in ("dlib_torch", "run:PATH", "onnx:PATH")), out


CHECKS: dict[str, Callable[[Path, str, str], None]] = {
    "facecnn enroll photos/": _enrolled,
    "facecnn recognize group.jpg": _recognized,
    "facecnn train faces/": _trained,
    "facecnn cluster photos/": _clustered,
    "facecnn recognize clip.mp4": _tracked,
    "curl ": _served,
    "facecnn gallery list": _listed,
    "facecnn embedders": _embedders,
}


# ---- the work folder -----------------------------------------------------------------------
LFW_PEOPLE = ("Hugh_Grant", "Jackie_Chan", "Salma_Hayek")


def _middle(photo: Path) -> Image.Image:
    """An LFW photo's middle, where its subject is, at 200 px (no bystanders' faces)."""
    return Image.open(photo).convert("RGB").crop((50, 40, 200, 190)).resize((200, 200))


def prepare_workspace(work: Path) -> Path:
    lfw = SHARED / "lfw_dev"
    assert lfw.is_dir(), f"LFW photos not found at {lfw}"
    for person in LFW_PEOPLE:
        (work / "photos" / person).mkdir(parents=True)
        for i in range(1, 5):
            name = f"{person}_{i:04d}.jpg"
            shutil.copyfile(lfw / person / name, work / "photos" / person / name)
    group = Image.new("RGB", (400, 200), (120, 120, 120))
    group.paste(_middle(lfw / "Jackie_Chan" / "Jackie_Chan_0010.jpg"), (0, 0))
    group.paste(_middle(lfw / "Tom_Hanks" / "Tom_Hanks_0001.jpg"), (200, 0))
    group.save(work / "group.jpg", quality=92)
    make_jpeg_tree(work / "faces", [f"s{i}" for i in range(1, 6)], 10)
    first_frames(SHARED / "videos" / "hamilton.mp4", work / "clip.mp4", 30)
    return work


def first_frames(video: Path, out: Path, count: int) -> None:
    import cv2

    source = cv2.VideoCapture(str(video))
    size = (int(source.get(cv2.CAP_PROP_FRAME_WIDTH)), int(source.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"),
                             source.get(cv2.CAP_PROP_FPS), size)
    try:
        for _ in range(count):
            ok, frame = source.read()
            assert ok, f"cannot read {count} frames of {video}"
            writer.write(frame)
    finally:
        writer.release()
        source.release()


# ---- running the blocks --------------------------------------------------------------------
def environment() -> dict[str, str]:
    """A reader's shell: this venv's `facecnn` and `python` first on PATH."""
    return {**os.environ,
            "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")}


def bash(script: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-eu", "-o", "pipefail", "-c", script], cwd=cwd,
                          env=environment(), capture_output=True, text=True, timeout=HANG_GUARD)


def kind(block: Block) -> str:
    """install, pytest or serve (each in a block of its own), run, or mixed (an error)."""
    commands = block.commands or [""]
    for name, prefix in (("install", "pip install"), ("pytest", "python -m pytest"),
                         ("serve", "facecnn serve")):
        if commands[0].startswith(prefix):
            return name if all(c.startswith(prefix) for c in commands) else "mixed"
    return "run"


def steps() -> list[list[Block]]:
    """The README's shell blocks in order, a server's block with the block after it (read at
    collection: nothing here may fail, or no test of the run would start)."""
    blocks, out, i = shell_blocks(), [], 0
    while i < len(blocks):
        size = 2 if kind(blocks[i]) == "serve" else 1
        out.append(blocks[i:i + size])
        i += size
    return out


STEPS = steps()


class Reader:
    """Follows the README from the top in one work folder: a step first runs the steps before
    it that have not run yet, so any one test may also be run alone."""

    def __init__(self, work: Path, request: pytest.FixtureRequest) -> None:
        self.work, self.request = work, request
        self.failed: dict[int, str] = {}
        self.done: set[int] = set()

    def follow(self, index: int) -> None:
        for k in range(index + 1):
            if k in self.failed:
                pytest.fail(f"an earlier README block failed: {self.failed[k]}")
            if k not in self.done:
                try:
                    self.step(STEPS[k])
                except BaseException as exc:
                    self.failed[k] = f"{STEPS[k][0].name}: {str(exc)[:300]}"
                    raise
                self.done.add(k)

    def step(self, blocks: list[Block]) -> None:
        what = kind(blocks[0])
        assert blocks[0].commands, f"{blocks[0].name}: an empty shell block"
        assert what != "mixed", (f"{blocks[0].name}: give `pip install`, `python -m pytest` "
                                 f"and `facecnn serve` blocks of their own")
        assert len(blocks) == 2 or what != "serve", f"{blocks[0].name}: no client after it"
        if what == "install":
            check_install(blocks[0])
        elif what == "pytest":
            check_pytest(blocks[0])
        elif what == "serve":
            self.serve(*blocks)
        else:
            self.run(blocks[0], self.values(blocks[0].text))

    def values(self, text: str) -> dict[str, str]:
        values = {"port": str(free_port())}
        if "postgresql://" in text:
            values["pg"] = shlex.quote(self.request.getfixturevalue("postgres").new_gallery())
        return values

    def run(self, block: Block, values: dict[str, str]) -> None:
        script = substituted(block.text, values)
        done = bash(script, self.work)
        assert done.returncode == 0, (f"{block.name} exited {done.returncode}:\n{script}\n"
                                      f"stdout: {done.stdout[-3000:]}\n"
                                      f"stderr: {done.stderr[-3000:]}")
        for prefix, check in CHECKS.items():
            if any(command.startswith(prefix) for command in block.commands):
                check(self.work, done.stdout, done.stderr)

    def serve(self, server: Block, client: Block) -> None:
        values = self.values(server.text + client.text)
        command = substituted(server.commands[0], values)
        log = self.work / f"serve-{values['port']}.log"
        with log.open("w") as out:
            proc = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=self.work,
                                    env=environment(), stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + HANG_GUARD
            while True:
                assert proc.poll() is None, f"{server.name} exited: {log.read_text()[-3000:]}"
                assert time.time() < deadline, f"{server.name} never answered /healthz"
                try:
                    if httpx.get(f"http://127.0.0.1:{values['port']}/healthz").is_success:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            self.run(client, values)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def substituted(text: str, values: dict[str, str]) -> str:
    for old, new, _ in SUBSTITUTIONS:
        if old in text:
            text = text.replace(old, new.format(**values))
    return text


def check_install(block: Block) -> None:
    """Installing is checked, not repeated (see the module's docstring)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for command in block.commands:
        words = shlex.split(command, comments=True)
        if words == ["pip", "install", "-e", "."]:
            direct = json.loads(metadata.distribution("facecnn").read_text("direct_url.json"))
            assert direct.get("dir_info", {}).get("editable"), f"not editable: {direct}"
            assert Path(direct["url"].removeprefix("file://")).resolve() == ROOT, direct
            assert (Path(sys.executable).parent / "facecnn").is_file()
        elif words == ["pip", "install", "-e", ".[test]"]:
            assert 'pip install -q -e ".[test]"' in CI.read_text(), "CI installs otherwise"
            for requirement in project["optional-dependencies"]["test"]:
                metadata.version(re.split(r"[<>=!~\[; ]", requirement)[0])  # installed
        else:
            pytest.fail(f"{block.name}: an install this test does not know: {command}")


def check_pytest(block: Block) -> None:
    """CI's command is CI's to run. Any other (the fast tier) is run with `--collect-only` on
    this file and test_readme_links.py (collecting every file imports the whole stack, 10-20 s
    on 2 cores): it must take the links' tests, which start nothing, and leave this one out."""
    for command in block.commands:
        if command == ci_test_command():
            continue
        done = bash(f"{command} --collect-only tests/{Path(__file__).name} "
                    f"tests/test_readme_links.py", ROOT)
        assert done.returncode == 0, f"{command} --collect-only:\n{done.stdout[-3000:]}"
        assert re.search(r"\d+/\d+ tests collected \(\d+ deselected\)", done.stdout), (
            done.stdout[-2000:])
        assert "test_readme_links.py::" in done.stdout, done.stdout[-2000:]
        assert f"{Path(__file__).name}::" not in done.stdout, f"{command} selects e2e tests"


# ---- the tests -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory, att_faces: Path,
           request: pytest.FixtureRequest) -> Reader:
    return Reader(prepare_workspace(tmp_path_factory.mktemp("readme")), request)


@pytest.mark.parametrize("index", range(len(STEPS)),
                         ids=[" + ".join(block.name for block in step) for step in STEPS])
def test_readme_shell_block(reader: Reader, index: int) -> None:
    reader.follow(index)


def test_substitutions_and_checks_still_match() -> None:
    """A substitution or a check whose README text has gone would quietly test less."""
    text = "\n".join(block.text for block in shell_blocks())
    commands = [command for block in shell_blocks() for command in block.commands]
    assert not [old for old, _, _ in SUBSTITUTIONS if old not in text]
    assert not [prefix for prefix in CHECKS if not any(c.startswith(prefix) for c in commands)]
