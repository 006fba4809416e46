"""Shared fixtures: where the real data lives, a small synthetic data set, notebook timings.

Real data sits beside the repository in ``../shared/datasets`` (never copied in). A test that
needs it is skipped, with the reason shown, when it is absent, except under CI (env ``CI``
set), where a missing data set is a failure: CI must not pass by skipping.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"

NOTEBOOK_DURATIONS = pytest.StashKey[dict]()


def require_path(path: Path, what: str) -> Path:
    """Return ``path`` if it exists; else skip the test (or fail it under CI)."""
    path = Path(path)
    if path.exists():
        return path
    reason = f"{what} not found at {path}"
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so missing data is an error, not a skip)")
    pytest.skip(reason)


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """The unit tests train tiny models: one torch thread avoids OpenMP start-up and waits
    (10-20x faster on a shared 2-core machine). Notebook kernels are separate processes."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """The folder holding ml-1m_clean/ and amazon_beauty/ (skip/fail rule above)."""
    return require_path(SHARED_DATASETS, "shared datasets folder")


@pytest.fixture(scope="session")
def ml1m_dir(shared_datasets) -> Path:
    """DiffRec's released ML-1M split: {train,valid,test}_list.npy."""
    return require_path(shared_datasets / "ml-1m_clean", "ml-1m_clean")


@pytest.fixture(scope="session")
def beauty_pkl(shared_datasets) -> Path:
    """DiffuRec's Amazon Beauty leave-one-out split (dataset.pkl)."""
    return require_path(shared_datasets / "amazon_beauty" / "dataset.pkl", "amazon_beauty/dataset.pkl")


@pytest.fixture(scope="session")
def synthetic():
    """A small seeded synthetic data set: ``(InteractionData, SyntheticTruth)``.

    Session-scoped and shared: treat it as read-only.
    """
    from tutorial_lib.synthetic import make_synthetic

    return make_synthetic(seed=0)


@pytest.fixture(scope="session")
def notebook_durations(request) -> dict:
    """``{notebook name: seconds}``, printed as a table at the end of the run."""
    return request.config.stash.setdefault(NOTEBOOK_DURATIONS, {})


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    durations = config.stash.get(NOTEBOOK_DURATIONS, {})
    if not durations:
        return
    terminalreporter.section("notebook durations (papermill, FAST=True)")
    for name, seconds in sorted(durations.items()):
        terminalreporter.write_line(f"{name:45s} {seconds:7.1f} s")
    terminalreporter.write_line(f"{'total':45s} {sum(durations.values()):7.1f} s")
