"""Notebook glue: record results inside an executed notebook, read them back, run notebooks.

A notebook calls ``record("recall@20", 0.21)``. That displays one output carrying a custom
MIME bundle::

    {"application/x-tutorial-record": '{"name": "recall@20", "value": 0.21}',
     "text/plain": "recall@20 = 0.21"}

so the value is saved in the ``.ipynb`` itself (no side files, no scrapbook). Tests execute
the notebook with papermill (``FAST=True``) and call ``read_notebook(path)["recall@20"]``.
The payload is a JSON *string* (not a ``+json`` MIME type, which nbformat stores as a dict)
so that nbval's sanitizers (tests/nbval_sanitize.cfg) see it as text, like ``text/plain``.

Command line (``make tutorial`` uses the first form)::

    python -m tutorial_lib.notebook run-all --out build notebooks/00_*.ipynb ...
        execute each notebook with FAST=True (papermill), write build/NAME.ipynb and
        build/NAME.html, print each duration; does nothing when given no notebooks.
    python -m tutorial_lib.notebook refresh notebooks/01_noise_schedules.ipynb
        re-execute in place with the notebook's own defaults (FAST=True), so the committed
        outputs are regenerated in one step (see notebooks/README.md for the output policy).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

RECORD_MIME = "application/x-tutorial-record"
FAST_PARAMETERS = {"FAST": True}
DEFAULT_TIMEOUT = 600  # seconds for a whole notebook; a guard against hangs, not a speed goal


# --------------------------------------------------------------------------- recording
def _jsonable(value):
    """Convert numpy / torch scalars and arrays to plain Python; reject what JSON can't hold."""
    if hasattr(value, "detach"):  # torch.Tensor (bf16 has no NumPy type: go through float32)
        value = value.detach().cpu()
        value = (value.float() if value.is_floating_point() else value).numpy()
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy array/scalar
        value = value.tolist()
    if isinstance(value, dict):
        out = {str(k): _jsonable(v) for k, v in value.items()}
        if len(out) != len(value):
            raise ValueError(f"record() got keys that collide as strings: {list(value)}")
        return out
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"record() got a non-finite number ({value}); JSON cannot hold it")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"record() needs a JSON-able value (numbers, strings, lists, dicts, "
                     f"arrays); got {type(value).__name__}")


def record_bundle(name: str, value) -> dict:
    """The MIME bundle ``record`` displays: {RECORD_MIME: JSON string, "text/plain": summary}."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"record() needs a non-empty string name, got {name!r}")
    value = _jsonable(value)
    shown = json.dumps(value)
    if len(shown) > 200:
        shown = shown[:200] + " ..."
    return {RECORD_MIME: json.dumps({"name": name, "value": value}), "text/plain": f"{name} = {shown}"}


def record(name: str, value) -> None:
    """Save ``value`` under ``name`` in the executing notebook's outputs (read by tests)."""
    from IPython.display import display

    display(record_bundle(name, value), raw=True)


def read_notebook(path) -> dict:
    """Return ``{name: value}`` for every ``record`` in an executed notebook (last one wins).

    Reads the file as the JSON it is (nbformat 4), without nbformat's schema validation, whose
    first import costs more than a second inside a notebook."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no notebook at {path}")
    nb = json.loads(path.read_text(encoding="utf-8"))
    if nb.get("nbformat", 0) < 4:
        raise ValueError(f"{path} is nbformat {nb.get('nbformat')}; read_notebook needs version 4")
    records = {}
    for cell in nb["cells"]:
        for out in cell.get("outputs", []) if cell["cell_type"] == "code" else []:
            payload = out.get("data", {}).get(RECORD_MIME)
            if payload is not None:
                payload = json.loads(payload if isinstance(payload, str) else "".join(payload))
                records[payload["name"]] = payload["value"]
    return records


# --------------------------------------------------------------------------- executing
def execute(notebook, out, parameters=None, timeout: float = DEFAULT_TIMEOUT,
            progress: bool = False) -> float:
    """Execute ``notebook`` with papermill into ``out``; return the wall time in seconds.

    ``timeout`` bounds the *whole* notebook: each cell gets whatever time is left, and once
    none is left no further cell is sent to the kernel (a TimeoutError naming the slowest
    cells). A kernel shut down in the middle of a cell prints a ZMQ "Socket operation on
    non-socket" traceback as it tries to answer: that follows a timeout, it does not cause one.
    Raises papermill's ``PapermillExecutionError`` (it names the failing cell) on error;
    the partly executed notebook is still written to ``out``.
    """
    import papermill as pm

    notebook, out = Path(notebook), Path(out)
    if not notebook.is_file():
        raise FileNotFoundError(f"no notebook at {notebook}")
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    limit = _Deadline(timeout, start)
    pm.execute_notebook(
        str(notebook), str(out), parameters=dict(FAST_PARAMETERS if parameters is None else parameters),
        kernel_name="python3", cwd=str(notebook.parent.resolve()), progress_bar=progress,
        timeout_func=limit.cell_timeout, on_cell_execute=limit.before_cell)
    return time.monotonic() - start


class _Deadline:
    """One time limit for a whole notebook: each cell may run for what is left
    (``cell_timeout``, nbclient's ``timeout_func``), and no cell starts once none is left
    (``before_cell``, its ``on_cell_execute`` hook), so the kernel is idle when it is shut down.
    The error names the slowest cells so far."""

    def __init__(self, timeout: float, start: float):
        self.timeout, self.deadline = timeout, start + timeout
        self.started: dict[int, float] = {}      # cell index -> when it was sent to the kernel

    def cell_timeout(self, cell) -> float:
        return _time_left(self.deadline, self.timeout)

    def before_cell(self, cell, cell_index: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if now >= self.deadline:
            starts = list(self.started.values())
            spent = {i: end - s for i, s, end in zip(self.started, starts, [*starts[1:], now])}
            slowest = sorted(spent, key=spent.get, reverse=True)[:3]
            raise TimeoutError(f"the notebook ran past its timeout of {self.timeout:g} s before cell "
                               f"{cell_index}; slowest cells: " + ", ".join(f"{i} ({spent[i]:.0f} s)" for i in slowest))
        self.started[cell_index] = now


def _time_left(deadline: float, timeout: float) -> float:
    """Seconds the next cell may run so that the whole notebook ends by ``deadline``."""
    left = deadline - time.monotonic()
    if left <= 0:                  # (a cell timeout of 0 would mean "no limit" to nbclient)
        raise TimeoutError(f"the notebook ran past its timeout of {timeout:g} s")
    return left


def to_html(notebook, out) -> Path:
    """Convert an executed notebook to a standalone HTML page."""
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(notebook, as_version=4))
    Path(out).write_text(body, encoding="utf-8")
    return Path(out)


def _without_papermill(nb):
    """``nb`` without papermill's metadata and injected cell, and with no outputs left."""
    nb.metadata.pop("papermill", None)
    nb.metadata.pop("widgets", None)                     # nbclient writes it anew if there are any
    leftovers = {"injected-parameters", "papermill-error-cell-tag"}
    nb.cells = [c for c in nb.cells if not leftovers & set(c.metadata.get("tags", []))]
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def refresh(notebook, timeout: float = DEFAULT_TIMEOUT) -> float:
    """Re-execute ``notebook`` in place with its own defaults; return the wall time.

    Uses nbclient directly (not papermill), and first removes what a papermill run may have
    left in the file (its metadata, an injected-parameters cell, every old output and
    execution count), so the committed file holds only fresh outputs, counts 1, 2, 3, ...
    """
    import nbformat
    from nbclient import NotebookClient

    notebook = Path(notebook)
    nb = _without_papermill(nbformat.read(notebook, as_version=4))
    start = time.monotonic()
    deadline = start + timeout
    NotebookClient(nb, kernel_name="python3", record_timing=False, store_widget_state=True,
                   timeout_func=lambda cell: _time_left(deadline, timeout),
                   resources={"metadata": {"path": str(notebook.parent.resolve())}}).execute()
    nbformat.write(nb, notebook)
    return time.monotonic() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tutorial_lib.notebook", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run_all = sub.add_parser("run-all", help="execute notebooks (FAST) into --out, with HTML")
    run_all.add_argument("--out", default="build", help="output folder (default: build)")
    run_all.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                         help="seconds allowed per notebook")
    run_all.add_argument("notebooks", nargs="*", type=Path)
    ref = sub.add_parser("refresh", help="re-execute notebooks in place (committed outputs)")
    ref.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    ref.add_argument("notebooks", nargs="+", type=Path)
    args = parser.parse_args(argv)

    failed = 0
    for nb in args.notebooks:
        try:
            if args.command == "run-all":
                out = Path(args.out) / nb.name
                seconds = execute(nb, out, timeout=args.timeout)
                to_html(out, out.with_suffix(".html"))
            else:
                seconds = refresh(nb, timeout=args.timeout)
            print(f"{nb.name:45s} {seconds:7.1f} s", flush=True)
        except Exception as err:  # report every notebook, fail at the end
            failed += 1
            print(f"{nb.name:45s}  FAILED: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
    if not args.notebooks:
        print("no notebooks given; nothing to do")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
