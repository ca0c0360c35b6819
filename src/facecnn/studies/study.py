"""Studies: a YAML file (or flags) naming data and axes; every combination is an ordinary run.

```yaml
name: optimizers
data: mnist5k
base: {model: seed_mnist_cnn, epochs: 5, batch_size: 64}   # shared by every run
axes: {optimizer: [sgd, adam], seed: [0, 1, 2]}             # cartesian product
runs:                                                       # or / and explicit runs
  - {name: transfer, weights: "{digits}/weights/best.pt", freeze: all-but-head}
```

Run settings are TrainConfig fields, and any of them but project, name and quiet (which the
study sets) may be an axis; each run's settings are coerced and checked before any run trains.
`{other_run}` in a string is that earlier run's folder,
and `{weights}` the file given with `--weights`: runs that need it are skipped, with a note,
when it is absent. Finished runs (metrics.json present) are never trained again, so an
interrupted study resumes where it stopped.
"""

from __future__ import annotations

import itertools
import re
import shutil
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from facecnn.config import TrainConfig, coerce_fields
from facecnn.data.builtin import BUILTIN
from facecnn.errors import FacecnnError

# Every run of a study is saved under the study's folder, named for its settings (see _train).
AXES = tuple(f.name for f in fields(TrainConfig) if f.name not in ("project", "name", "quiet"))
_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_.-]+)\}")


@dataclass
class Study:
    name: str
    data: str | None = None
    base: dict[str, Any] = field(default_factory=dict)
    axes: dict[str, list[Any]] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    notes: str = ""

    @classmethod
    def load(cls, path: Path) -> "Study":
        if not path.is_file():
            raise FacecnnError(f"study file not found: {path}")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise FacecnnError(f"{path} is not valid YAML: {exc}".splitlines()[0]) from None
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise FacecnnError(f"{path}: unknown keys {', '.join(unknown)}; use "
                               f"{', '.join(sorted(known))}")
        raw.setdefault("name", path.stem)
        try:
            return cls(**coerce_fields(cls, raw))
        except FacecnnError as exc:
            raise FacecnnError(f"{path}: {exc}") from None

    def override(self, data: str | None = None, axes: dict[str, list[Any]] | None = None,
                 base: dict[str, Any] | None = None) -> "Study":
        """Command-line flags win over the file."""
        return Study(self.name, data or self.data, {**self.base, **(base or {})},
                     {**self.axes, **(axes or {})}, self.runs, self.notes)

    def plan(self) -> list[tuple[str, dict[str, Any]]]:
        """(run name, settings) for every run, explicit runs first (later ones may use them)."""
        planned = []
        for spec in self.runs:
            spec = dict(self._checked("runs", spec))
            name = spec.pop("name", None) or f"run{len(planned) + 1}"
            planned.append((name, {**self.base, **spec}))
        keys = list(self.axes)
        for unknown in set(keys) - set(AXES):
            raise FacecnnError(f"unknown axis {unknown!r}; axes are {', '.join(AXES)}")
        for values in itertools.product(*(self._values(k) for k in keys)) if keys else []:
            combo = dict(zip(keys, values))
            planned.append((run_name(combo), {**self.base, **combo}))  # named as written
        planned = [(name, self._checked(f"run {name}", settings)) for name, settings in planned]
        if not planned:
            raise FacecnnError(f"study {self.name} has no axes and no runs")
        names = [n for n, _ in planned]
        if len(set(names)) != len(names):
            raise FacecnnError(f"study {self.name} names two runs the same")
        return planned

    def _checked(self, where: str, settings: Any) -> dict[str, Any]:
        try:
            return TrainConfig.check(settings)
        except FacecnnError as exc:
            raise FacecnnError(f"study {self.name}, {where}: {exc}") from None

    def _values(self, key: str) -> list[Any]:
        values = self.axes[key]
        return values if isinstance(values, list) else [values]


def run_name(combo: dict[str, Any]) -> str:
    """A readable folder name from the axis values: optimizer-adam_seed-0."""
    parts = [f"{k}-{Path(str(v)).stem if k == 'weights' else v}" for k, v in combo.items()]
    return re.sub(r"[^A-Za-z0-9_.=-]+", "", "_".join(parts)) or "run"


def resolve(settings: dict[str, Any], folders: dict[str, Path],
            weights: str | None) -> dict[str, Any] | str:
    """Fill `{run}` and `{weights}` placeholders; returns why the run cannot go when one is
    missing."""
    out = {}
    for key, value in settings.items():
        if isinstance(value, str):
            for ref in _PLACEHOLDER.findall(value):
                if ref == "weights":
                    if weights is None:
                        return "needs ImageNet weights: pass --weights FILE"
                    value = value.replace("{weights}", weights)
                elif ref in folders:
                    value = value.replace(f"{{{ref}}}", str(folders[ref]))
                else:
                    return f"needs run {ref!r}, which did not finish"
        out[key] = value
    return out


def run_study(study: Study, *, project: str = "runs", weights: str | None = None,
              quiet: bool = True, reporter: Any = None) -> tuple[Path, list[dict[str, Any]]]:
    """Train every planned run that has not finished; returns (study folder, run records)."""
    root = Path(project) / "compare" / study.name
    planned = study.plan()
    _check_data(study, [(name, settings) for name, settings in planned
                        if not (root / "train" / name / "metrics.json").is_file()])
    from facecnn.train.trainer import Trainer

    records, folders = [], {}
    for name, settings in planned:
        folder = root / "train" / name
        resolved = resolve(settings, folders, weights)
        if isinstance(resolved, str):
            records.append({"name": name, "settings": settings, "skipped": resolved})
            continue
        if not (folder / "metrics.json").is_file():
            _train(folder, name, resolved, study.data, root, quiet, reporter, Trainer)
        folders[name] = folder
        records.append({"name": name, "settings": resolved, "folder": folder})
    return root, records


def _check_data(study: Study, to_train: list[tuple[str, dict[str, Any]]]) -> None:
    """Refuse before any run trains (and before torch loads) when a run's data is missing: the
    shipped face studies name the team's ../shared folder, which a fresh clone lacks."""
    for name, settings in to_train:
        data = settings.get("data", study.data)
        if data is None:
            raise FacecnnError(f"run {name} has no data: give the study `data:` or --data")
        if data not in BUILTIN and not Path(data).expanduser().exists():
            raise FacecnnError(f"study {study.name}: data folder {data} not found; pass --data "
                               "FOLDER (one folder of photos per person)")


def _train(folder: Path, name: str, settings: dict[str, Any], data: str | None, root: Path,
           quiet: bool, reporter: Any, trainer_cls: Any) -> None:
    """Resume an interrupted run, or start it afresh (a folder with no checkpoint is ours to
    clear: it holds only the config of a run that never finished an epoch)."""
    if any((folder / "weights" / f).is_file() for f in ("last.pt", "best.pt")):
        trainer_cls(None, reporter, resume=folder).fit(folder)
        return
    if folder.exists():
        shutil.rmtree(folder)
    values = {"data": data, **settings, "project": str(root), "name": name, "quiet": quiet}
    trainer_cls(TrainConfig.from_dict(values), reporter).fit()
