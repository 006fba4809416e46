"""Shared fixtures: where the real data lives, a small synthetic data set, notebook timings.

Real data is read from ``$TUTORIAL_DATA_DIR``, else from ``../shared/datasets`` beside the
repository (never copied in). A test that needs it is skipped, with the reason shown, when it is absent, except under CI (env ``CI``
set), where a missing data set is a failure: CI must not pass by skipping.

The end of the run prints one summary of every skipped test, grouped by cause (no browser,
missing real data, anything else), each with the command that makes it run.
"""
from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
if SHARED_DATASETS.is_dir():      # the library reads $TUTORIAL_DATA_DIR (default "data"), and so do
    os.environ.setdefault("TUTORIAL_DATA_DIR", str(SHARED_DATASETS))     # notebook kernels started here
DATA_DIR = Path(os.environ.get("TUTORIAL_DATA_DIR") or SHARED_DATASETS)  # what the real-data tests read

NOTEBOOK_DURATIONS = pytest.StashKey[dict]()
DATA_SKIP = "real data missing:"        # how require_path's skip reasons start
# how to get each real data set (the name require_path gives it -> what to do)
DATA_SOURCES = {
    "ml-1m_clean": "DiffRec's split (a .rar, unpacked by hand): download datasets/ml-1m_clean.rar "
                   "from https://github.com/YiyanXu/DiffRec and unpack it into data/ml-1m_clean/",
    "amazon_beauty": "DiffuRec's split: python -c \"from tutorial_lib.datasets import fetch; "
                     "fetch('amazon_beauty', root='data')\"",
}


def require_path(path: Path, what: str) -> Path:
    """Return ``path`` if it exists; else skip the test (or fail it under CI)."""
    path = Path(path)
    if path.exists():
        return path
    reason = f"{DATA_SKIP} {what} not found at {path}"
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
    return require_path(DATA_DIR, "data folder")


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


def _notebook_durations(terminalreporter, config) -> None:
    durations = config.stash.get(NOTEBOOK_DURATIONS, {})
    if not durations:
        return
    terminalreporter.section("notebook durations (papermill, FAST=True)")
    for name, seconds in sorted(durations.items()):
        terminalreporter.write_line(f"{name:45s} {seconds:7.1f} s")
    terminalreporter.write_line(f"{'total':45s} {sum(durations.values()):7.1f} s")


def _skip_reason(report) -> str:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    return reason.removeprefix("Skipped: ")


def _group_skips(reports) -> dict[str, dict[str, list[str]]]:
    """``{"browser" | "data" | "other": {reason: [test ids]}}`` of the skipped tests."""
    groups: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for report in reports:
        reason = _skip_reason(report)
        cause = ("browser" if "browser" in report.keywords else
                 "data" if reason.startswith(DATA_SKIP) else "other")
        groups[cause][reason].append(report.nodeid)
    return groups


def _browser_lines(reasons: dict[str, list[str]]) -> list[str]:
    lines = []
    for reason, tests in reasons.items():
        lines += [f"{len(tests)} browser test(s) skipped: {reason}", *(f"    {t}" for t in tests)]
        lines.append("  to run them: make install-test && make test   (installs the Python package "
                     "playwright)" if "package" in reason.lower() else
                     "  to run them: make browser && make test   (gets Playwright's Chromium, else "
                     "uses the system's; says what to install when neither is there)")
    return lines


def _data_lines(reasons: dict[str, list[str]]) -> list[str]:
    count = sum(map(len, reasons.values()))
    lines = [f"{count} real-data test(s) skipped: the papers' released splits are not here"]
    missing = set()
    for reason, tests in reasons.items():
        lines.append(f"    {reason.removeprefix(DATA_SKIP).strip()} ({len(tests)} test(s))")
        missing |= {name for name in DATA_SOURCES if name in reason} or set(DATA_SOURCES)
    lines.append(f"  they read the folder in TUTORIAL_DATA_DIR, else ../shared/datasets beside the "
                 f"repository (here: {DATA_DIR}); to run them:")
    lines += [f"    {name}: {DATA_SOURCES[name]}" for name in sorted(missing)]
    lines.append("    then: TUTORIAL_DATA_DIR=data make test")
    return lines


def _other_lines(reasons: dict[str, list[str]]) -> list[str]:
    lines = [f"{sum(map(len, reasons.values()))} other test(s) skipped:"]
    for reason, tests in reasons.items():
        lines.append(f"    {reason} ({len(tests)} test(s): {', '.join(tests[:3])}"
                     f"{', ...' if len(tests) > 3 else ''})")
    return lines


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Notebook durations, then (last, after pytest's own lists) the skipped tests by cause."""
    _notebook_durations(terminalreporter, config)
    yield
    groups = _group_skips(terminalreporter.stats.get("skipped", []))
    if not groups:
        return
    total = sum(len(t) for reasons in groups.values() for t in reasons.values())
    terminalreporter.section(f"not run: {total} skipped test(s), and how to run them", yellow=True)
    for cause, lines_of in (("browser", _browser_lines), ("data", _data_lines), ("other", _other_lines)):
        if cause in groups:
            for line in lines_of(groups[cause]):
                terminalreporter.write_line(line)
