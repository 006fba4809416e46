"""What `make test` says about the tests it did not run, and how `make browser` finds Chromium.

The summary tests run pytest in a subprocess on a small generated test file next to a copy of
this suite's conftest.py, and read what it prints at the end.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import chromium
import pytest

HERE = Path(__file__).resolve().parent
HEADER = "not run:"

SKIPPING = '''
    from pathlib import Path

    import pytest
    from conftest import require_path

    NO_CHROMIUM = "chromium not found: neither Playwright's nor the system's (/usr/bin/chromium)"

    @pytest.mark.browser
    def test_widgets_of_03():
        pytest.skip(NO_CHROMIUM)

    @pytest.mark.browser
    def test_widgets_of_05():
        pytest.skip(NO_CHROMIUM)

    @pytest.mark.browser
    def test_widgets_of_07():
        pytest.skip("playwright (Python package) is not installed")

    def test_on_ml1m():
        require_path(Path("/nowhere/ml-1m_clean"), "ml-1m_clean")

    def test_on_beauty():
        require_path(Path("/nowhere/amazon_beauty/dataset.pkl"), "amazon_beauty/dataset.pkl")

    def test_later():
        pytest.skip("notebook 09 not written yet")

    def test_runs():
        assert True
'''


def _run_pytest(tmp_path: Path, source: str, ci: bool = False) -> subprocess.CompletedProcess:
    shutil.copy(HERE / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    browser: drives a browser\n")
    (tmp_path / "test_generated.py").write_text(textwrap.dedent(source))
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TUTORIAL_DATA_DIR")}
    if ci:
        env["CI"] = "true"
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rfExX",
                           "test_generated.py"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def summary(tmp_path_factory) -> str:
    """The section after the header, as printed by a run with 6 skips of 3 kinds."""
    done = _run_pytest(tmp_path_factory.mktemp("skips"), SKIPPING)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(HEADER) == 1, done.stdout
    return done.stdout[done.stdout.index(HEADER):]


def test_summary_names_the_skipped_browser_tests_their_cause_and_the_command(summary):
    assert "not run: 6 skipped test(s)" in summary
    assert "2 browser test(s) skipped: chromium not found" in summary
    assert "test_generated.py::test_widgets_of_03" in summary
    assert "test_generated.py::test_widgets_of_05" in summary
    assert "to run them: make browser" in summary


def test_summary_sends_a_missing_playwright_package_to_the_test_install(summary):
    assert "1 browser test(s) skipped: playwright (Python package) is not installed" in summary
    assert "to run them: make install-test" in summary


def test_summary_names_the_missing_data_where_it_was_looked_for_and_how_to_get_it(summary):
    assert "2 real-data test(s) skipped" in summary
    assert "ml-1m_clean not found at /nowhere/ml-1m_clean (1 test(s))" in summary
    assert "amazon_beauty/dataset.pkl not found at /nowhere/amazon_beauty/dataset.pkl" in summary
    assert "TUTORIAL_DATA_DIR" in summary
    assert "fetch('amazon_beauty', root='data')" in summary
    assert "https://github.com/YiyanXu/DiffRec" in summary


def test_summary_lists_other_skips_with_their_reason(summary):
    assert "1 other test(s) skipped" in summary
    assert "notebook 09 not written yet (1 test(s): test_generated.py::test_later)" in summary


def test_summary_comes_after_every_other_list(summary):
    """It is the last thing before pytest's final count line."""
    tail = summary.splitlines()
    assert "skipped" in tail[-1] and "passed" in tail[-1]
    assert not any(line.startswith("SKIPPED") for line in tail)


def test_no_summary_when_nothing_is_skipped(tmp_path):
    done = _run_pytest(tmp_path, "def test_runs():\n    assert True\n")
    assert done.returncode == 0, done.stdout + done.stderr
    assert HEADER not in done.stdout


def test_missing_data_fails_under_ci(tmp_path):
    done = _run_pytest(tmp_path, SKIPPING, ci=True)
    assert done.returncode == 1
    assert "2 failed" in done.stdout and "CI is set" in done.stdout


# ------------------------------------------------------------------ tests/chromium.py


@pytest.mark.parametrize("system, os_release, command", [
    ("Linux", 'ID=debian\n', "sudo apt-get install chromium"),
    ("Linux", 'ID=ubuntu\nID_LIKE=debian\n', "sudo snap install chromium"),
    ("Linux", 'ID="fedora"\n', "sudo dnf install chromium"),
    ("Linux", 'ID=linuxmint\nID_LIKE="ubuntu debian"\n', "sudo snap install chromium"),
    ("Darwin", "", "brew install --cask chromium"),
    ("Windows", "", "winget install Hibbiki.Chromium"),
])
def test_install_hint_is_the_command_for_the_system(system, os_release, command):
    assert chromium.install_hint(system, os_release) == command


def test_if_missing_does_nothing_when_a_browser_is_there(monkeypatch, capsys):
    monkeypatch.setattr(chromium, "find_chromium", lambda: Path("/usr/bin/chromium"))
    monkeypatch.setattr(chromium, "try_playwright_download",
                        lambda timeout: pytest.fail("no download when a browser is there"))
    assert chromium.main(["--if-missing"]) == 0
    assert "the browser tests use /usr/bin/chromium" in capsys.readouterr().out


def _no_browser_anywhere(monkeypatch):
    monkeypatch.setattr(chromium, "playwright_chromium", lambda: None)
    monkeypatch.setattr(chromium, "system_chromium", lambda: None)
    monkeypatch.setattr(chromium, "try_playwright_download", lambda timeout: "ENOTFOUND cdn")
    chromium.find_chromium.cache_clear()


def test_no_browser_prints_the_install_command_and_never_stops_make_test(monkeypatch, capsys):
    _no_browser_anywhere(monkeypatch)
    try:
        assert chromium.main(["--if-missing"]) == 0          # the step of `make test`
        assert chromium.main([]) == 1                        # `make browser`
    finally:
        chromium.find_chromium.cache_clear()
    out = capsys.readouterr().out
    assert "Playwright's download failed: ENOTFOUND cdn" in out
    assert f"install one with:  {chromium.install_hint()}" in out
