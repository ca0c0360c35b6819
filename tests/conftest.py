"""Shared fixtures: the real AT&T faces and small image trees made from them. The helpers the
tests share (the CLI runners, photos, servers) live in helpers.py."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Under xdist each worker process gets one core: PyTorch's and OpenMP's default of a thread per
# core in every worker (and in every CLI process a test starts) oversubscribes the cores, and
# spinning OpenMP threads then wait on each other for most of the run. Set before torch loads.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

from helpers import ATT_FACES, invoke_cli, make_jpeg_tree  # noqa: E402

# The files that take longest, longest first (CPU seconds measured with `-n 2 --dist loadfile`
# in brackets). A worker is handed the next file as it nears the end of one, so starting with
# these leaves the short files to even out the end of the run instead of one worker idling
# while the other is still in test_train_cli.py. Files not named keep their order, after these.
LONGEST_FIRST = [
    "test_train_cli.py",  # 107: the demo, Ctrl-C and resume, torchrun
    "test_studies.py",  # 95: every shipped study
    "test_faces.py",  # 66: a 30-person gallery, 200 photos recognized
    "test_objectives.py",  # 33
    "test_serve.py",  # 31: two real server processes
    "test_models.py",  # 27
    "test_papercuts.py",  # 26
    "test_native_crop.py",  # 25
    "test_choices.py",  # 25
    "test_dlib_port.py",  # 19
    "test_file_safety.py",  # 17
    "test_detectors.py",  # 17
    "test_enroll_safety.py",  # 16
    "test_open_set.py",  # 12
]


def pytest_configure(config: pytest.Config) -> None:
    # xdist would otherwise hand out files with the most tests first, whatever they cost
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: same file order


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tests never read or fill the user's image cache."""
    os.environ["FACECNN_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def att_faces() -> Path:
    assert ATT_FACES.is_dir(), f"AT&T faces not found at {ATT_FACES}"
    return ATT_FACES


@pytest.fixture()
def faces3(tmp_path: Path) -> Path:
    """Three people, ten JPEGs each."""
    return make_jpeg_tree(tmp_path / "faces", ["s1", "s2", "s3"], 10)


@pytest.fixture()
def no_auto_amp(monkeypatch: pytest.MonkeyPatch) -> None:
    """What --no-amp pins, for the commands that have no such flag (demo, compare) run in
    this process: no mixed precision unless asked for, so results do not depend on whether
    the CPU (or a GPU) would have turned bf16 autocast on by itself."""
    from facecnn import runtime

    automatic = runtime.amp_dtype_for
    monkeypatch.setattr(runtime, "amp_dtype_for", lambda device, wanted: automatic(
        device, False if wanted is None else wanted))


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`facecnn train digits --model seed_mnist_cnn --epochs 2` (seed 0), trained once per
    worker for the modules that each trained this same run; take it with helpers.copy_run, so
    that what one test writes into its run no other test sees."""
    root = tmp_path_factory.mktemp("digits_run")
    result = invoke_cli("train", "digits", "--model", "seed_mnist_cnn", "--epochs", "2",
                        "--no-amp", "--quiet", "--project", str(root), cwd=root)
    assert result.returncode == 0, result.stderr
    return root / "train" / "exp"


@pytest.fixture(scope="session")
def postgres() -> Iterator:
    """A throwaway PostgreSQL server for this session (one per xdist worker, pg_cluster.py),
    its password in $PGPASSWORD as a user's shell would hold it."""
    from pg_cluster import Cluster

    cluster = Cluster()
    os.environ["PGPASSWORD"] = cluster.password
    yield cluster
    os.environ.pop("PGPASSWORD", None)
    cluster.destroy()


@pytest.fixture(params=["sqlite", "postgres"])
def new_location(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], str]:
    """Where to make fresh galleries, once for each store: paths of SQLite files (in a folder
    that does not exist yet), or URLs of new, empty schemas on the session's PostgreSQL."""
    if request.param == "postgres":
        return request.getfixturevalue("postgres").new_gallery
    paths = (str(tmp_path / "galleries" / f"g{i}.db") for i in itertools.count())
    return lambda: next(paths)
