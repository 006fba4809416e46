"""Fill-in cells: the check that answers a learner at once, and the student edition.

A fill-in ("Your turn") cell defines one function whose body computes the equation just shown.
In the committed (solved, instructor) edition the body sits between nbgrader's markers::

    def q_sample_yours(x0, t, eps):
        # Hint: sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, with alpha_bar_t indexed at t
        ### BEGIN SOLUTION
        ab = diffusion.alpha_bar[t][:, None]
        return ab.sqrt() * x0 + (1 - ab).sqrt() * eps
        ### END SOLUTION

The next cell calls :func:`check`, which compares the learner's value with the library's and
prints one verdict line: which value differs, by how much, and the hint. It never raises, so a
wrong answer reads as a sentence, not a stack trace.

``python -m tutorial_lib.exercises OUT_DIR NOTEBOOK...`` (``make exercises``) writes the student
edition: every solution block becomes ``raise NotImplementedError(<the hint>)`` and every hidden
``<details><summary>Solution</summary> ... </details>`` block of the markdown is removed.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import torch

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
HINT = re.compile(r"^\s*# Hint:\s*(.*)$")
DETAILS = re.compile(r"<details>\s*<summary>Solution</summary>.*?</details>\s*", re.S)
PASS, FAIL = "✓", "✗"


def _as_array(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=float)


def compare(yours, expected, rtol: float = 1e-5, atol: float = 1e-8) -> str | None:
    """None when ``yours`` matches ``expected`` (numbers, arrays or tensors, or dicts of them),
    else a sentence saying what differs: the shape, or the first entry off and by how much."""
    if isinstance(expected, dict):
        if not isinstance(yours, dict) or set(yours) != set(expected):
            return f"expected a dict with keys {sorted(expected)}, got {yours!r:.80}"
        for key in expected:
            diff = compare(yours[key], expected[key], rtol, atol)
            if diff:
                return f"[{key!r}] {diff}"
        return None
    a, b = _as_array(yours), _as_array(expected)
    if a.shape != b.shape:
        return f"shape {a.shape}, expected {b.shape}"
    close = np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True)
    if close.all():
        return None
    where = np.unravel_index(np.argmin(close), a.shape) if a.ndim else ()
    err = np.abs(a - b)
    return (f"{(~close).sum()} of {close.size} values differ; first at index {tuple(int(i) for i in where)}: "
            f"yours {a[where]:.6g}, expected {b[where]:.6g} (largest difference {np.nanmax(err):.3g})")


def check(name: str, yours, expected, hint: str = "", rtol: float = 1e-5, atol: float = 1e-8) -> bool:
    """Print one verdict line for a fill-in cell and return whether it passed.

    ``yours`` is the learner's value, or a function of no arguments that computes it (then an
    error inside it, e.g. the student edition's NotImplementedError, becomes the verdict).
    """
    if callable(yours):
        try:
            yours = yours()
        except NotImplementedError as err:
            print(f"{FAIL} {name}: not written yet ({err or 'fill in the function above'})")
            return False
        except Exception as err:                      # the learner's code failed: say how
            print(f"{FAIL} {name}: your code raised {type(err).__name__}: {err}" + (f". Hint: {hint}" if hint else ""))
            return False
    diff = compare(yours, expected, rtol, atol)
    if diff is None:
        print(f"{PASS} {name}: matches the library")
        return True
    print(f"{FAIL} {name}: {diff}" + (f". Hint: {hint}" if hint else ""))
    return False


def stub_solutions(source: str) -> str:
    """A code cell's source with every solution block replaced by ``raise NotImplementedError``
    carrying the block's ``# Hint:`` line (the line just above ``### BEGIN SOLUTION``)."""
    out, hint, inside = [], "", False
    for line in source.splitlines():
        stripped = line.strip()
        if stripped == BEGIN:
            indent = line[:len(line) - len(line.lstrip())]
            out.append(f"{indent}raise NotImplementedError({(hint or 'fill in this function')!r})")
            inside = True
        elif stripped == END:
            if not inside:
                raise ValueError(f"{END} without {BEGIN} in:\n{source}")
            inside = False
        elif not inside:
            match = HINT.match(line)
            hint = match.group(1) if match else hint
            out.append(line)
    if inside:
        raise ValueError(f"{BEGIN} without {END} in:\n{source}")
    return "\n".join(out)


def student_edition(nb):
    """A copy of notebook ``nb`` (nbformat) with solutions stubbed, hidden solutions removed and
    outputs cleared."""
    import copy

    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source = stub_solutions(cell.source)
            cell.outputs, cell.execution_count = [], None
        elif cell.cell_type == "markdown":
            cell.source = DETAILS.sub("", cell.source)
    return nb


def build(out_dir, notebooks) -> list[Path]:
    """Write the student edition of each notebook into ``out_dir``; returns the paths."""
    import nbformat

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in map(Path, notebooks):
        target = out_dir / path.name
        nbformat.write(student_edition(nbformat.read(path, as_version=4)), target)
        written.append(target)
    return written


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2:
        print("usage: python -m tutorial_lib.exercises OUT_DIR NOTEBOOK...", file=sys.stderr)
        return 2
    written = build(argv[0], argv[1:])
    print(f"student edition: {len(written)} notebooks in {argv[0]}/ (solutions replaced by stubs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
