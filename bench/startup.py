"""Start-up: how long `dlkit --help`, `dlkit --cfg job` and a full run's path to its first training step take.

    python bench/startup.py [--repeats 5] [--out bench/startup_results.json]

The first step and the whole default run are also timed with tracking.recorder=false (MLflow imported and written by
the training process itself), to show what the recorder process buys. Each measurement is a fresh `python -m dlkit`
process, timed from its launch. The baseline is a bare Lightning
script (a one-layer model, no Hydra, no MLflow), timed the same way in the same session. For the first training
step, the process runs dlkit's own command line with one addition: the task's training_step (patched as dlkit
imports it) notes the time it is first called and ends the process there (the run it opened is left behind in a
temporary store). The run uses the default config (MLP on digits, MLflow in sqlite) in a store that already
exists, as every run after a user's first does.
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

# Patches the task when dlkit imports it, not before (no early torch import).
class PatchTask(importlib.abc.MetaPathFinder):
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


# The baseline, in the same session: the least any Lightning program pays, importing torch and Lightning and
# reaching a first training step of a one-layer model (no Hydra, no MLflow, no data set).
BARE_LIGHTNING = """
import os, sys, time
launched = float(sys.argv[1])
import torch, pytorch_lightning as pl

class Tiny(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 2)
    def training_step(self, batch, index):
        print(f"FIRST_STEP {time.time() - launched:.3f}", flush=True)
        os._exit(0)
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

data = torch.utils.data.TensorDataset(torch.randn(8, 4), torch.randn(8, 2))
trainer = pl.Trainer(
    max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False
)
trainer.fit(Tiny(), torch.utils.data.DataLoader(data, batch_size=4))
"""


def wall(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dlkit", *args], check=True, capture_output=True)
    return time.perf_counter() - start


def first_step(script: str, *args: str) -> float:
    launched = time.time()
    done = subprocess.run(
        [sys.executable, "-c", script, str(launched), *args], check=True, capture_output=True, text=True
    )
    return float(done.stdout.split("FIRST_STEP ")[1].split()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="bench/startup_results.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        outputs = Path(tmp) / "outputs"
        # Creates the store: later runs find it.
        subprocess.run(
            [sys.executable, "-m", "dlkit", "trainer.max_epochs=1", f"paths.output_dir={outputs}"],
            check=True,
            capture_output=True,
        )
        results = {
            "help_s": [wall(["--help"]) for _ in range(args.repeats)],
            "cfg_job_s": [wall(["--cfg", "job"]) for _ in range(args.repeats)],
            "first_step_s": [],
            "bare_lightning_first_step_s": [],
            "first_step_direct_s": [],  # tracking.recorder=false: MLflow imported and written by the training process
            "run_s": [],  # the whole default run (30 epochs), to its summary line
            "run_direct_s": [],
        }
        store = f"paths.output_dir={outputs}"
        for _ in range(args.repeats):  # interleaved: every variant sees the same machine load
            results["first_step_s"].append(first_step(FIRST_STEP, store))
            results["bare_lightning_first_step_s"].append(first_step(BARE_LIGHTNING))
            results["first_step_direct_s"].append(first_step(FIRST_STEP, store, "tracking.recorder=false"))
            results["run_s"].append(wall([store]))
            results["run_direct_s"].append(wall([store, "tracking.recorder=false"]))
    summary = {name: statistics.median(times) for name, times in results.items()}
    for name, median in summary.items():
        print(f"{name:<28} median {median:.2f} s  ({', '.join(f'{t:.2f}' for t in results[name])})")
    overhead = summary["first_step_s"] - summary["bare_lightning_first_step_s"]
    print(f"dlkit's first step comes {overhead:.2f} s after a bare Lightning script's")
    recorder = summary["first_step_direct_s"] - summary["first_step_s"]
    print(
        f"the recorder process brings the first step {recorder:.2f} s earlier than writing from the training process;"
        f" the whole default run {summary['run_direct_s'] - summary['run_s']:.2f} s"
    )
    Path(args.out).write_text(
        json.dumps(
            {"repeats": results, "median": summary, "dlkit_minus_bare_s": overhead, "recorder_saves_s": recorder},
            indent=2,
        )
    )
    print(f"Written: {args.out}")


if __name__ == "__main__":
    main()
