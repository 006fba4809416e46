"""The project's set-up files agree with each other, and the library imports quickly."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# conda spells some packages differently from PyPI
CONDA_NAMES = {"torch": "pytorch", "playwright": "playwright-python"}


def _split(req: str):
    m = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(.*)", req)
    return m.group(1).lower(), m.group(2).replace(" ", "")


def test_environment_yml_agrees_with_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"]]
    for extra in ("notebooks", "test"):
        wanted += project["optional-dependencies"][extra]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = dict(_split(d) for d in env["dependencies"] if isinstance(d, str))
    problems = []
    for req in wanted:
        name, spec = _split(req)
        cname = CONDA_NAMES.get(name, name)
        if cname not in conda:
            problems.append(f"{name} is in pyproject.toml but not in environment.yml")
        elif conda[cname] != spec:
            problems.append(f"{name}: pyproject says {spec!r}, environment.yml says {conda[cname]!r}")
    pypi_names = {CONDA_NAMES.get(_split(r)[0], _split(r)[0]) for r in wanted}
    for cname in conda:
        if cname not in pypi_names | {"python", "pip"}:
            problems.append(f"{cname} is in environment.yml but not in pyproject.toml")
    assert not problems, "\n".join(problems)


def test_python_requirement_agrees():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pins = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")]
    assert pins == ["python" + project["requires-python"]]


def test_ci_installs_cpu_torch_first():
    ci = (ROOT / ".ci" / "run").read_text()
    lines = [line.strip() for line in ci.splitlines()]
    install = next(i for i, line in enumerate(lines) if "pip install" in line and "torch==2.13.0" in line)
    assert install < lines.index("make test"), "torch==2.13.0 must be installed before `make test`"
    assert "make test" in (ROOT / "README.md").read_text()


def test_import_is_lazy():
    # "imports quickly": `import tutorial_lib` loads no heavy dependency until a sub-module is used
    # (benchmarks/import_time.py prints the seconds; a timed test would be flaky)
    import subprocess
    import sys
    code = ("import sys, tutorial_lib as tl; heavy = [m for m in ('torch', 'pandas', 'scipy', 'matplotlib') "
            "if m in sys.modules]; tl.schedules; print(heavy, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] True"                 # nothing heavy at import, torch once schedules is used


def test_the_library_reads_no_folder_beside_the_repository():
    # the installed package finds data through an argument or TUTORIAL_DATA_DIR, never through
    # a path relative to its own source folder (such as ../shared/datasets)
    hits = [f"{path.relative_to(ROOT)}:{n}" for path in sorted((ROOT / "tutorial_lib").rglob("*.py"))
            for n, line in enumerate(path.read_text().splitlines(), 1)
            if re.search(r"shared/datasets|[\"']shared[\"']|parents\[[1-9]\]|\.\./", line)]
    assert not hits, hits
