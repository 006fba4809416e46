"""Fill-in cells: the check's verdicts, the student edition, and every notebook's exercises."""
from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from tutorial_lib.exercises import BEGIN, END, FAIL, PASS, build, check, compare, stub_solutions

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9]*.ipynb"))
MIN_FILL_INS = 2


def test_compare_names_the_first_differing_value():
    assert compare(torch.tensor([1.0, 2.0]), np.array([1.0, 2.0])) is None
    msg = compare([1.0, 2.5, 3.0], [1.0, 2.0, 3.0])
    assert "1 of 3 values differ" in msg and "index (1,)" in msg and "2.5" in msg
    assert "shape (2,), expected (3,)" in compare([1.0, 2.0], [1.0, 2.0, 3.0])
    assert compare({"mean": 1.0, "var": 2.0}, {"mean": 1.0, "var": 2.0}) is None
    assert compare({"mean": 1.0, "var": 2.1}, {"mean": 1.0, "var": 2.0}).startswith("['var']")


def test_check_prints_a_verdict_and_never_raises(capsys):
    assert check("right", lambda: 0.5, 0.5) is True
    assert check("wrong", lambda: 0.4, 0.5, hint="divide by the ideal DCG") is False

    def not_written():
        raise NotImplementedError("use the closed form")

    assert check("stub", not_written, 0.5) is False
    assert check("crash", lambda: 1 / 0, 0.5, hint="h") is False
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(PASS)
    assert lines[1].startswith(FAIL) and "yours 0.4, expected 0.5" in lines[1] and "Hint: divide" in lines[1]
    assert lines[2] == f"{FAIL} stub: not written yet (use the closed form)"
    assert "ZeroDivisionError" in lines[3]


def test_stub_keeps_the_signature_and_raises_the_hint():
    source = ("def f(x):\n    # Hint: double it\n    " + BEGIN + "\n    y = 2 * x\n    return y\n    "
              + END + "\n\nprint('after')")
    stub = stub_solutions(source)
    assert "2 * x" not in stub and BEGIN not in stub and "print('after')" in stub
    namespace = {}
    exec(stub.replace("print('after')", ""), namespace)
    with pytest.raises(NotImplementedError, match="double it"):
        namespace["f"](3)
    with pytest.raises(ValueError, match="without"):
        stub_solutions("    " + BEGIN + "\nx = 1")


def _solutions(source: str) -> list[str]:
    blocks, inside = [], False
    for line in source.splitlines():
        if line.strip() == BEGIN:
            inside, block = True, []
        elif line.strip() == END:
            inside = False
            blocks.append("\n".join(block))
        elif inside:
            block.append(line)
    return blocks


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_notebook_has_fill_ins_whose_checks_pass(path):
    nb = nbformat.read(path, as_version=4)
    fill_ins = [c for c in nb.cells if c.cell_type == "code" and BEGIN in c.source]
    assert len(fill_ins) >= MIN_FILL_INS, f"{path.name}: {len(fill_ins)} fill-in cells, want >= {MIN_FILL_INS}"
    verdicts = [line for c in nb.cells if c.cell_type == "code" for o in c.outputs
                if o.get("output_type") == "stream" for line in o["text"].splitlines()
                if line.startswith((PASS, FAIL))]
    assert not [v for v in verdicts if v.startswith(FAIL)], f"{path.name}: a check fails in the solved edition"
    assert len(verdicts) >= len(fill_ins), f"{path.name}: {len(fill_ins)} fill-ins but {len(verdicts)} check verdicts"


def test_student_edition_leaks_no_solution_and_each_stub_fails_clearly(tmp_path):
    written = build(tmp_path, NOTEBOOKS)
    assert [p.name for p in written] == [p.name for p in NOTEBOOKS]
    for solved_path, student_path in zip(NOTEBOOKS, written):
        solved = nbformat.read(solved_path, as_version=4)
        student = nbformat.read(student_path, as_version=4)
        text = "\n".join(c.source for c in student.cells)
        assert BEGIN not in text and "<summary>Solution</summary>" not in text, student_path.name
        assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code")
        for cell in solved.cells:
            for block in _solutions(cell.source) if cell.cell_type == "code" else []:
                for line in block.splitlines():
                    if len(line.strip()) > 12:
                        assert line.strip() not in text, f"{student_path.name} leaks {line.strip()!r}"
        stubs = [c.source for c in student.cells if c.cell_type == "code" and "raise NotImplementedError(" in c.source]
        assert len(stubs) >= MIN_FILL_INS, student_path.name
        for source in stubs:
            tree = ast.parse(source)
            functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
            assert functions, f"{student_path.name}: a fill-in cell must define a function:\n{source}"
            namespace = {}
            exec(compile(ast.Module(body=functions, type_ignores=[]), "<stub>", "exec"), namespace)
            for fn in functions:
                with pytest.raises(NotImplementedError) as err:
                    namespace[fn.name](*[None] * len(fn.args.args))
                assert str(err.value), f"{student_path.name}: {fn.name}'s stub has no hint"


def test_ranking_metric_checks_fail_an_answer_that_divides_by_min_k_r():
    """Notebook 00 warns that Recall@K divides by |R|, not min(K, |R|). Its checks run on users
    with |R| > K, so that mistake (and NDCG's ideal DCG over all |R| ranks) reads as a failure."""
    from tutorial_lib import metrics

    nb = nbformat.read(REPO / "notebooks" / "00_recommendation_as_denoising.ipynb", as_version=4)
    code = {name: next(c.source for c in nb.cells if c.cell_type == "code" and name in c.source)
            for name in ('check("Recall@10"', 'check("NDCG@10"')}

    def recall_min_k_r(ranked, relevant, k):
        return sum(1 for item in ranked[:k] if item in relevant) / min(k, len(relevant))

    def ndcg_ideal_over_r(ranked, relevant, k):
        dcg = sum(1 / np.log2(r + 1) for r, item in enumerate(ranked[:k], start=1) if item in relevant)
        return dcg / sum(1 / np.log2(r + 1) for r in range(1, len(relevant) + 1))

    namespace = {"np": np, "torch": torch, "metrics": metrics, "check": check, "SEED": 0,
                 "recall_at_k_yours": recall_min_k_r, "ndcg_at_k_yours": ndcg_ideal_over_r}
    exec(code['check("Recall@10"'], namespace)
    assert max(len(r) for r in namespace["demo_relevant"]) > 10          # users with |R| > K
    assert namespace["_"] is False
    exec(code['check("NDCG@10"'], namespace)
    assert namespace["_"] is False
