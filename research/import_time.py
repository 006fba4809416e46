"""How long `import tutorial_lib` (and its core modules) takes in a fresh interpreter.

    python research/import_time.py        # prints one JSON line; goal: under 2 s on 2 cores
"""
import json
import subprocess
import sys

CODE = ("import time; t = time.perf_counter(); import tutorial_lib; a = time.perf_counter() - t; "
        "import tutorial_lib.schedules, tutorial_lib.diffusion, tutorial_lib.data, tutorial_lib.metrics; "
        "print(a, time.perf_counter() - t)")

runs = [tuple(map(float, subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                                         check=True).stdout.split())) for _ in range(3)]
print(json.dumps({"import_tutorial_lib_s": round(min(r[0] for r in runs), 3),
                  "import_core_modules_s": round(min(r[1] for r in runs), 3), "goal_s": 2.0}))
