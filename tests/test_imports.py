"""Importing the library changes no global state of matplotlib or IPython.

A learner's notebook imports ``tutorial_lib`` before anything else: an import that patched
matplotlib's parser, changed rcParams or swapped IPython's hooks would act on every figure of
the session unasked. The import runs in a fresh interpreter, with an IPython shell and the
inline backend set up as in a kernel, and every module of the package is imported.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("IPython")

# Prints "CHANGED <what>" for each global that differs after importing the modules in argv[1:]
# (every module of tutorial_lib when none is given); "IMPORTED <n>" on success.
COMPARE = textwrap.dedent(r"""
    import importlib, pkgutil, sys
    import matplotlib
    from IPython.core.interactiveshell import InteractiveShell
    shell = InteractiveShell.instance()
    matplotlib.use("module://matplotlib_inline.backend_inline")
    from matplotlib_inline.backend_inline import configure_inline_support
    configure_inline_support(shell, "inline")
    import matplotlib.pyplot as plt
    from matplotlib import _mathtext
    from matplotlib._pylab_helpers import Gcf

    def state():
        formatters = shell.display_formatter.formatters
        return {
            "rcParams": dict(matplotlib.rcParams),
            "backend": matplotlib.get_backend(),
            "mathtext parser": _mathtext.Parser.parse,
            "pyplot figures": list(Gcf.figs),
            "pyplot interactive": plt.isinteractive(),
            "pyplot functions": {k: v for k, v in vars(plt).items() if callable(v)},
            "IPython events": {e: list(cbs) for e, cbs in shell.events.callbacks.items()},
            "IPython formatters": {m: (dict(f.type_printers), dict(f.deferred_printers))
                                   for m, f in formatters.items()},
            "IPython displayhook": sys.displayhook,
        }

    before = state()
    import tutorial_lib
    names = sys.argv[1:] or sorted(m.name for m in pkgutil.walk_packages(tutorial_lib.__path__, "tutorial_lib."))
    for name in names:
        importlib.import_module(name)
    after = state()
    for key in before:
        if before[key] != after[key]:
            print("CHANGED", key)
    print("IMPORTED", len(names))
""")


def _run(*modules: str, setup: str = "") -> str:
    code = COMPARE.replace("before = state()", setup + "\nbefore = state()")     # setup: before the check
    run = subprocess.run([sys.executable, "-c", code, *modules], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


def test_importing_every_module_changes_no_global_state():
    out = _run()
    assert "CHANGED" not in out, out
    n = int(out.split("IMPORTED")[1])
    assert n >= 20, f"only {n} modules found: the walk missed the package"


PATCHES = {
    "mathtext parser": "from matplotlib import _mathtext\n_mathtext.Parser.parse = lambda self, *a, **k: None",
    "rcParams": "import matplotlib\nmatplotlib.rcParams['figure.dpi'] = 33",
    "IPython events": ("from IPython import get_ipython\n"
                       "get_ipython().events.register('post_execute', lambda: None)"),
    "pyplot figures": "import matplotlib.pyplot as plt\nplt.figure()",
}


def test_the_check_sees_an_import_time_patch(tmp_path):
    # each module patches one global on import (the mathtext parser, rcParams, ...): all are reported
    modules = [f"patch_{i}" for i in range(len(PATCHES))]
    for name, patch in zip(modules, PATCHES.values()):
        (tmp_path / f"{name}.py").write_text(patch + "\n")
    out = _run("tutorial_lib.viz", *modules, setup=f"sys.path.insert(0, {str(tmp_path)!r})")
    assert sorted(line[len("CHANGED "):] for line in out.splitlines() if line.startswith("CHANGED")) == sorted(PATCHES)
