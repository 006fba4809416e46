"""The README's "Your own data" script runs as written, on a generated CSV."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def own_data_script() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("## Your own data", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def write_clicks(path: Path, n_users: int = 120, n_items: int = 80, seed: int = 0) -> None:
    """Clicks with two taste groups (users "alice", "bob", "u2", ... ; items "i0" ...), in time order."""
    rng = np.random.default_rng(seed)
    names = ["alice", "bob"] + [f"u{k}" for k in range(2, n_users)]
    rows = []
    for u, name in enumerate(names):
        group = np.arange(n_items // 2) + (n_items // 2) * (u % 2)       # half the catalogue each
        items = rng.choice(group, size=12, replace=False)
        for t, i in enumerate(items):
            rows.append((name, f"i{i}", 1_000 * u + t))
    pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).to_csv(path, index=False)


def test_own_data_script_prints_raw_item_ids(tmp_path):
    write_clicks(tmp_path / "clicks.csv")
    script = tmp_path / "my_run.py"
    script.write_text(own_data_script())
    # one thread: the tiny model gains nothing from two, and a busy CI machine can stall them
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "columns: user 'user_id', item 'item_id', time 'timestamp'" in out
    rows = [line.split() for line in out.splitlines() if re.match(r"^\s*\d+\s+(alice|bob)\s", line)]
    assert len(rows) == 20, out[-2000:]                                  # 10 each for alice and bob
    items = {r[1]: [] for r in rows}
    for r in rows:
        items[r[1]].append(r[3])
    assert all(i.startswith("i") for its in items.values() for i in its)   # raw item ids
    # alice (even) clicked items i0..i39 only, bob (odd) i40..i79: each gets their own half
    assert sum(int(i[1:]) < 40 for i in items["alice"]) >= 8
    assert sum(int(i[1:]) >= 40 for i in items["bob"]) >= 8


# ---- what the READMEs name exists

READMES = ("README.md", "data/README.md")


def test_every_import_in_the_readmes_works():
    """Each ``from tutorial_lib... import a, b`` of README.md and data/README.md (code blocks,
    ``python -c`` lines and prose alike) names something that is there."""
    import importlib

    found = []
    for name in READMES:
        for module, names in re.findall(r"from (tutorial_lib[\w.]*) import ([\w, ]+)", (REPO / name).read_text()):
            found.append(module)
            imported = importlib.import_module(module)
            for attr in (n.strip() for n in names.split(",") if n.strip()):
                assert hasattr(imported, attr), f"{name}: from {module} import {attr}"
    assert "tutorial_lib.datasets" in found


def test_every_dotted_name_in_the_readmes_exists():
    """Each `tutorial_lib.module.name` in backticks (e.g. the Licence's `...datasets.fetch`) resolves."""
    import importlib

    for name in READMES:
        for dotted in re.findall(r"`(tutorial_lib(?:\.\w+)+)", (REPO / name).read_text()):
            parts, obj = dotted.split("."), None
            for k in range(len(parts), 0, -1):                  # the longest importable module, then attributes
                try:
                    obj = importlib.import_module(".".join(parts[:k]))
                except ImportError:
                    continue
                for attr in parts[k:]:
                    assert hasattr(obj, attr), f"{name}: {dotted}"
                    obj = getattr(obj, attr)
                break
            assert obj is not None, f"{name}: {dotted}"


def test_set_up_names_make_install_and_its_targets_exist():
    text = (REPO / "README.md").read_text()
    setup = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    makefile = (REPO / "Makefile").read_text()
    for target in ("install", "tutorial", "test"):
        assert re.search(rf"^make {target}\s+#", setup, re.M), target
        assert re.search(rf"^{target}:", makefile, re.M), target
        assert re.search(rf"`make {target}` (about )?\d+", setup), f"how long make {target} takes"


def test_data_readme_names_the_data_folder_the_code_uses(monkeypatch):
    """data/README.md: the argument, else $TUTORIAL_DATA_DIR, else data/ (download.data_root)."""
    from tutorial_lib.download import DATA_DIR_VARIABLE, data_root

    monkeypatch.delenv(DATA_DIR_VARIABLE, raising=False)
    assert data_root() == Path("data") and data_root("elsewhere") == Path("elsewhere")
    text = (REPO / "data" / "README.md").read_text()
    section = text.split("## The papers' released splits", 1)[1].split("\n## ", 1)[0]
    assert f"`${DATA_DIR_VARIABLE}`" in section and "`data/`" in section and "`root` argument" in section
    assert "by default in `../shared/datasets/`" not in text
