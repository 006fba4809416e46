"""A real browser: JupyterLab in headless Chromium runs the notebooks and drives their widgets.

Starts ``jupyter lab`` on a free port with a random token and a temporary copy of the
notebooks, opens ``03_diffrec.ipynb``, runs all cells from the Run menu, waits for the
kernel, then moves the trajectory explorer's step slider with the keyboard and checks that

* every widget renders (no "Error displaying widget"),
* the explorer's figure changes when the slider moves,
* once the kernel has drawn every queued step, the label names the slider's step
  (ten key presses from x_T: x_{T-10}) and the figure stays put,

and saves a screenshot to ``build/browser_03_diffrec.png``. The copy trains for fewer
epochs (EPOCHS = 5): this test is about the widgets, not the accuracy.

A second test does the same for the other notebooks' explorers (01's schedules, 05's time
weights, 06's reverse steps, 07's inference steps; ``tutorial_lib.viz.schedules``,
``.tdiffrec``, ``.diffurec``, ``.seqdiffrec``): run all, no widget error and no traceback
anywhere, and moving the named slider redraws the explorer's figure (screenshots
``build/browser_NN_*.png``). A third runs the notebooks without an explorer (00, 02, 04) and
keeps a full-page screenshot of their figures as JupyterLab shows them
(``build/browser_NN_*_figures.png``), for a reader to look at every figure.

Needs a Chromium (Playwright's own, else the system's: ``tests/chromium.py``; ``make browser``
gets one) and Playwright's Python package: skipped with the reason when either is missing, a
failure under CI (env ``CI`` set).
"""
from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from chromium import SYSTEM_CANDIDATES, find_chromium

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = "03_diffrec.ipynb"
SCREENSHOT = REPO / "build" / "browser_03_diffrec.png"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
RUN_TIMEOUT_MS = 240_000        # run-all of the notebook: a hang guard, not a speed goal


def _missing(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: the browser test must run)")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _copy_notebook(root: Path, name: str = NOTEBOOK, overrides: str = "EPOCHS = 5") -> None:
    nb = nbformat.read(REPO / "notebooks" / name, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":            # no saved outputs: whatever shows comes from this run
            cell.outputs, cell.execution_count = [], None
        if "parameters" in cell.metadata.get("tags", []) and overrides:
            cell.source += f"\n{overrides}  # browser test: widgets, not accuracy"
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, root / name)


def _write_settings(settings: Path) -> None:
    """Render every cell (no windowing: off-screen outputs stay in the DOM), no news toast."""
    for plugin, values in (("notebook-extension/tracker", '{"windowingMode": "none"}'),
                           ("apputils-extension/notification", '{"fetchNews": "false"}')):
        path = settings / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(values)


def _start_lab(root: Path, port: int, token: str) -> subprocess.Popen:
    _write_settings(root / ".settings")
    jupyter = Path(sys.executable).parent / "jupyter"
    cmd = [str(jupyter), "lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           f"--LabApp.workspaces_dir={root / '.workspaces'}",
           f"--LabApp.user_settings_dir={root / '.settings'}",
           "--LabApp.extension_manager=readonly", "--LabApp.news_url=None"]   # no network
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")              # containers and CI often run as root
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(root / ".runtime"), "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    log = open(root / "jupyter.log", "wb")      # a file, not a pipe: nobody reads a pipe while the
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)   # test runs
    url = f"http://127.0.0.1:{port}/api/status?token={token}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited early:\n{(root / 'jupyter.log').read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return proc
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    raise RuntimeError("jupyter lab did not answer within 60 s")


def _explorer_image(page) -> str:
    """The src of the explorer's figure (an ipywidgets Image: a blob URL per PNG)."""
    img = page.locator(".widget-vbox img.widget-image").last
    img.wait_for(state="visible", timeout=RUN_TIMEOUT_MS)
    return img.get_attribute("src")


def _settled_image(page, timeout_s: float = 60.0) -> str:
    """The explorer's figure once the kernel is idle and the image has stopped changing.

    Each key press queues one redraw in the kernel; the browser shows them one after the
    other, so the first change is not the last: wait for the kernel, then for a still image.
    """
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=timeout_s * 1000)
    deadline = time.monotonic() + timeout_s
    src = _explorer_image(page)
    while time.monotonic() < deadline:
        time.sleep(1.5)
        newer = _explorer_image(page)
        if newer == src:
            return src
        src = newer
    raise AssertionError(f"the explorer's figure was still changing after {timeout_s:.0f} s")


def _need_browser():
    """Playwright's sync API, or skip (fail under CI) when it or Chromium is missing."""
    if find_chromium() is None:
        _missing(f"chromium not found: neither Playwright's nor the system's ({SYSTEM_CANDIDATES[0]})")
    try:
        from playwright import sync_api
    except ImportError:
        _missing("playwright (Python package) is not installed")
    return sync_api


def _open_and_run_all(pw, port: int, token: str, name: str):
    """Open notebook ``name`` in JupyterLab, run all cells, wait until none is running."""
    browser = pw.chromium.launch(executable_path=str(find_chromium()), args=CHROMIUM_ARGS, headless=True)
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    page.goto(f"http://127.0.0.1:{port}/lab/tree/{name}?token={token}")
    page.locator(".jp-Notebook").first.wait_for(timeout=60_000)
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=60_000)   # kernel up

    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    item = page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first
    item.wait_for(timeout=10_000)
    item.click()
    page.locator(".jp-InputPrompt", has_text="[1]").first.wait_for(timeout=60_000)
    # every cell done: no "[*]" prompt left
    page.wait_for_function(
        "() => ![...document.querySelectorAll('.jp-InputPrompt')]"
        ".some(p => p.textContent.includes('*'))", timeout=RUN_TIMEOUT_MS)
    return browser, page


def _screenshot_and_close(browser, page, element, path: Path) -> str:
    """Screenshot with ``element`` in view, then close the browser; returns the page's HTML."""
    path.parent.mkdir(exist_ok=True)
    element.scroll_into_view_if_needed()
    page.screenshot(path=str(path))
    content = page.content()
    browser.close()
    return content


def _assert_no_errors(content: str) -> None:
    assert "Error displaying widget" not in content
    assert "Traceback (most recent call last)" not in content, "a cell or a widget callback raised"


def _stop(lab: subprocess.Popen) -> None:
    lab.terminate()
    try:
        lab.wait(timeout=20)
    except subprocess.TimeoutExpired:
        lab.kill()


@pytest.mark.browser
def test_trajectory_explorer_in_jupyterlab(tmp_path):
    sync_api = _need_browser()
    PlaywrightTimeout = sync_api.TimeoutError

    _copy_notebook(tmp_path)
    port, token = _free_port(), secrets.token_hex(16)
    lab = _start_lab(tmp_path, port, token)
    try:
        with sync_api.sync_playwright() as pw:
            browser, page = _open_and_run_all(pw, port, token, NOTEBOOK)
            before = _explorer_image(page)

            handle = page.locator(".widget-vbox .widget-slider .noUi-handle").last
            handle.scroll_into_view_if_needed()
            handle.focus()
            for _ in range(10):
                page.keyboard.press("ArrowRight")
            page.wait_for_function(
                "(old) => { const imgs = document.querySelectorAll('.widget-vbox img.widget-image');"
                " return imgs.length && imgs[imgs.length - 1].src !== old; }",
                arg=before, timeout=60_000)
            T = round(float(handle.get_attribute("aria-valuemax")))
            position = round(float(handle.get_attribute("aria-valuenow")))
            expected = f"showing x_{T - position}" + (" (output)" if position == T else "")
            try:    # the label is set as the last queued redraw starts: wait for it, then the figure
                page.wait_for_function(
                    "(want) => { const ls = document.querySelectorAll('.widget-vbox .widget-label');"
                    " return ls.length && ls[ls.length - 1].textContent.trim() === want; }",
                    arg=expected, timeout=60_000)
            except PlaywrightTimeout:
                pass    # reported by the label assertion below, with what the label said
            after = _settled_image(page)
            label = page.locator(".widget-vbox .widget-label").last.inner_text()

            content = _screenshot_and_close(browser, page, page.locator(".widget-vbox").last, SCREENSHOT)
    finally:
        _stop(lab)

    _assert_no_errors(content)
    assert after != before, "the explorer's figure did not change when the slider moved"
    assert "x_" in label and "(input)" not in label, f"slider did not move: label {label!r}"
    assert position == min(10, T), f"ten presses moved the slider to {position} (max {T})"
    assert label.strip() == expected, f"label {label!r} does not match the slider at step {position} of {T}"
    assert SCREENSHOT.stat().st_size > 10_000


# notebook, the slider to move (its description), the key that moves it away from its start,
# the parameter overrides that keep the run short
EXPLORERS = [
    ("01_noise_schedules.ipynb", "T", "ArrowRight", ""),
    ("05_t_diffrec.ipynb", "w_min", "ArrowRight", "EPOCHS = 3\nLT_EPOCHS = 3"),
    ("06_diffurec.ipynb", "step", "ArrowLeft", "EPOCHS = 2"),
    ("07_seqdiffrec.ipynb", "start step s", "ArrowLeft", "EPOCHS = 2"),
]


def _output_image(box) -> str:
    """The src of the figure inside an explorer's Output widget (an inline PNG as a data URL)."""
    img = box.locator(".widget-output img").last
    img.wait_for(state="visible", timeout=60_000)
    return img.get_attribute("src")


def _settled_output(page, box, timeout_s: float = 60.0) -> str:
    """The explorer's figure once the kernel is idle and the figure has stopped changing."""
    deadline = time.monotonic() + timeout_s
    src = _output_image(box)
    while time.monotonic() < deadline:
        page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=timeout_s * 1000)
        time.sleep(1.5)
        newer = _output_image(box)
        if newer == src and page.get_by_text("Python 3 (ipykernel) | Idle").count():
            return src
        src = newer
    raise AssertionError(f"the explorer's figure was still changing after {timeout_s:.0f} s")


@pytest.mark.browser
@pytest.mark.parametrize("name, slider_label, key, overrides", EXPLORERS, ids=[e[0][:2] for e in EXPLORERS])
def test_notebook_explorers_in_jupyterlab(tmp_path, name, slider_label, key, overrides):
    sync_api = _need_browser()
    _copy_notebook(tmp_path, name, overrides)
    port, token = _free_port(), secrets.token_hex(16)
    lab = _start_lab(tmp_path, port, token)
    screenshot = REPO / "build" / f"browser_{Path(name).stem}.png"
    try:
        with sync_api.sync_playwright() as pw:
            browser, page = _open_and_run_all(pw, port, token, name)
            label = page.locator("label.widget-label").filter(has_text=re.compile(f"^{re.escape(slider_label)}$"))
            slider = page.locator(".widget-slider").filter(has=label)
            slider.first.wait_for(timeout=60_000)          # widget views render after the cell ends
            assert slider.count() == 1, f"expected one slider {slider_label!r}, found {slider.count()}"
            box = page.locator(".widget-vbox").filter(has=slider).last      # the explorer
            before = _output_image(box)
            value_before = slider.locator(".widget-readout").inner_text()
            handle = slider.locator(".noUi-handle")
            handle.scroll_into_view_if_needed()
            handle.focus()
            for _ in range(3):
                page.keyboard.press(key)
            deadline, after = time.monotonic() + 60, before
            while after == before and time.monotonic() < deadline:     # the first redraw has landed
                time.sleep(0.5)
                after = _output_image(box)
            after = _settled_output(page, box)                         # and the last one
            value_after = slider.locator(".widget-readout").inner_text()
            content = _screenshot_and_close(browser, page, box, screenshot)
    finally:
        _stop(lab)

    _assert_no_errors(content)
    assert value_after != value_before, f"the slider {slider_label!r} did not move ({value_before})"
    assert after != before, f"the explorer's figure did not change when {slider_label!r} moved"
    assert screenshot.stat().st_size > 10_000


# notebooks whose figures are checked by eye from a full-page screenshot, their overrides, and
# the fewest figures (PNG outputs) each must show
FIGURE_NOTEBOOKS = [
    ("00_recommendation_as_denoising.ipynb", "", 2),
    ("02_forward_reverse_elbo.ipynb", "", 6),
    ("04_l_diffrec.ipynb", "EPOCHS = 3\nLIGHTGCN_EPOCHS = 2\nFAIR_EPOCHS = 5", 4),
]


@pytest.mark.browser
@pytest.mark.parametrize("name, overrides, n_figures", FIGURE_NOTEBOOKS, ids=[e[0][:2] for e in FIGURE_NOTEBOOKS])
def test_notebook_figures_in_jupyterlab(tmp_path, name, overrides, n_figures):
    sync_api = _need_browser()
    _copy_notebook(tmp_path, name, overrides)
    port, token = _free_port(), secrets.token_hex(16)
    lab = _start_lab(tmp_path, port, token)
    screenshot = REPO / "build" / f"browser_{Path(name).stem}_figures.png"
    try:
        with sync_api.sync_playwright() as pw:
            browser, page = _open_and_run_all(pw, port, token, name)
            figures = page.locator(".jp-OutputArea-output img")
            n_shown = figures.count()
            n_blank = page.evaluate("() => [...document.querySelectorAll('.jp-OutputArea-output img')]"
                                    ".filter(img => !img.complete || img.naturalWidth < 50).length")
            screenshot.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
            content = page.content()
            browser.close()
    finally:
        _stop(lab)

    _assert_no_errors(content)
    assert n_shown >= n_figures, f"{name} showed {n_shown} figures, expected at least {n_figures}"
    assert n_blank == 0, f"{n_blank} figures did not load"
    assert screenshot.stat().st_size > 10_000
