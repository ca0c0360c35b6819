"""Run folders `<project>/<task>/<name>`: names auto-increment (exp, exp2, exp3...)."""

from __future__ import annotations

from pathlib import Path


def new_run_dir(project: str | Path, task: str, name: str) -> Path:
    """Create and return a fresh run folder; never reuses one that exists."""
    parent = Path(project) / task
    parent.mkdir(parents=True, exist_ok=True)
    for i in range(1, 100_000):
        candidate = parent / (name if i == 1 else f"{name}{i}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise RuntimeError(f"no free run name under {parent}")

