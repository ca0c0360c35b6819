"""Shared fixtures: the real AT&T faces and small image trees made from them; which tests are
e2e, and the order files run in. The helpers the tests share (the CLI runners, photos, servers)
live in helpers.py."""

from __future__ import annotations

import itertools
import json
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

# Seconds per file (setup, call and teardown of its tests) as measured by
# `python -m pytest -q -n 2 --dist loadfile --store-durations`; files run longest first. A worker
# is handed the next file as it nears the end of one, so starting with the longest leaves the
# short files to even out the end of the run instead of one worker idling while the other is
# still in the longest file.
DURATIONS = Path(__file__).with_name("durations.json")

# `-m "not e2e"` is the fast tier, a minute or less: no processes started, no PostgreSQL, no
# browser, nothing read from ../shared/data, no training runs. A test is e2e without a marker of
# its own when it takes one of these fixtures (../shared/data, PostgreSQL, a trained run), the
# PostgreSQL half of `new_location`, or is marked `web` (a browser) or `slow`; the others carry
# `pytest.mark.e2e` themselves, since the helpers' processes and photos show in no fixture (and
# test_models' build of every registered architecture, for its 15 s alone).
E2E_FIXTURES = {"att_faces", "faces3", "postgres", "digits_run"}
E2E_MARKERS = ("web", "slow")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--store-durations", action="store_true",
                     help=f"write each test file's measured seconds to tests/{DURATIONS.name} "
                          "(the order files run in); files not run keep their numbers")


def pytest_configure(config: pytest.Config) -> None:
    # xdist would otherwise hand out files with the most tests first, whatever they cost
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False
    if config.getoption("store_durations") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(DurationStore(), "facecnn-durations")


def _needs_e2e(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    return (any(item.get_closest_marker(name) for name in E2E_MARKERS)
            or not E2E_FIXTURES.isdisjoint(item.fixturenames)
            or (callspec is not None and callspec.params.get("new_location") == "postgres"))


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by the markers added here
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _needs_e2e(item):
            item.add_marker(pytest.mark.e2e)
    seconds = json.loads(DURATIONS.read_text()) if DURATIONS.is_file() else {}
    # stable: tests keep their order within a file, and unmeasured files theirs, after the rest
    items.sort(key=lambda item: -seconds.get(item.path.name, -1.0))


class DurationStore:
    """Sums each file's test durations as reports reach this process (the xdist controller,
    or the only process) and merges them into DURATIONS at the end."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        name = Path(report.nodeid.split("::")[0]).name
        self.seconds[name] = self.seconds.get(name, 0.0) + report.duration

    def pytest_sessionfinish(self) -> None:
        known = json.loads(DURATIONS.read_text()) if DURATIONS.is_file() else {}
        known = {name: s for name, s in known.items() if DURATIONS.with_name(name).is_file()}
        known.update({name: round(s, 1) for name, s in self.seconds.items()})
        ordered = dict(sorted(known.items(), key=lambda pair: (-pair[1], pair[0])))
        DURATIONS.write_text(json.dumps(ordered, indent=1) + "\n")


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
