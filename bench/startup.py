"""Start-up: how long `dlkit --help`, `dlkit --cfg job` and a full run's path to its first training step take.

    python bench/startup.py [--repeats 3] [--out bench/startup_results.json]

Each measurement is a fresh `python -m dlkit` process, timed from its launch. For the first training step, the
process runs dlkit's own command line with one addition: the task's training_step (patched as dlkit imports it)
notes the time it is first called and ends the process there (the run it opened is left behind in a temporary store). The run uses the
default config (MLP on digits, MLflow in sqlite) in a store that already exists, as every run after a user's
first does.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Runs inside the measured process: dlkit's command line, ended at the first training step.
FIRST_STEP = """
import importlib.abc, importlib.util, os, sys, time
launched = float(sys.argv.pop(1))

def first_step(self, *args):
    print(f"FIRST_STEP {time.time() - launched:.3f}", flush=True)
    os._exit(0)

class PatchTask(importlib.abc.MetaPathFinder):  # patches the task when dlkit imports it, not before (no early torch import)
    def find_spec(self, name, path, target=None):
        if name != "dlkit.tasks.base":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        load = spec.loader.exec_module
        def exec_module(module):
            load(module)
            module.Supervised.training_step = first_step
        spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, PatchTask())
from dlkit.cli import main
main()
"""


def wall(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dlkit", *args], check=True, capture_output=True)
    return time.perf_counter() - start


def first_step(outputs: Path) -> float:
    launched = time.time()
    done = subprocess.run([sys.executable, "-c", FIRST_STEP, str(launched), f"paths.output_dir={outputs}"],
                          check=True, capture_output=True, text=True)
    return float(done.stdout.split("FIRST_STEP ")[1].split()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="bench/startup_results.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        outputs = Path(tmp) / "outputs"
        subprocess.run([sys.executable, "-m", "dlkit", "trainer.max_epochs=1", f"paths.output_dir={outputs}"],
                       check=True, capture_output=True)  # creates the store: later runs find it
        results = {
            "help_s": [wall(["--help"]) for _ in range(args.repeats)],
            "cfg_job_s": [wall(["--cfg", "job"]) for _ in range(args.repeats)],
            "first_step_s": [first_step(outputs) for _ in range(args.repeats)],
        }
    summary = {name: statistics.median(times) for name, times in results.items()}
    for name, median in summary.items():
        print(f"{name:<14} median {median:.2f} s  ({', '.join(f'{t:.2f}' for t in results[name])})")
    Path(args.out).write_text(json.dumps({"repeats": results, "median": summary}, indent=2))
    print(f"Written: {args.out}")


if __name__ == "__main__":
    main()
