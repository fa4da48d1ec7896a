"""Parallel sweeps: the same sweep on Hydra's basic launcher (one job after another) and on
`hydra/launcher=parallel` (joblib, one job per core), wall time of each and their ratio.

    python bench/launchers.py [--jobs 4] [--epochs 60] [--out bench/launcher_results.json]

Both are real `dlkit -m` processes with default tracking (MLflow in sqlite), run one after the other in
the same session; each job trains the MLP on MNIST-1D.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from sweep import sweep_wall

CASE = ["data=mnist1d", "model=mlp"]  # about 0.17 s an epoch: jobs of about 10 s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--out", default="bench/launcher_results.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        # MNIST-1D generated and cached; the store format known.
        subprocess.run(
            [sys.executable, "-m", "dlkit", *CASE, "trainer.max_epochs=1", f"paths.output_dir={tmp}/warm"],
            check=True,
            capture_output=True,
        )
        seeds = list(range(args.jobs))
        basic = sweep_wall(seeds, args.epochs, Path(tmp) / "basic", [*CASE, "hydra/launcher=basic"])
        parallel = sweep_wall(seeds, args.epochs, Path(tmp) / "parallel", [*CASE, "hydra/launcher=parallel"])
    result = {
        "jobs": args.jobs,
        "epochs": args.epochs,
        "case": CASE,
        "basic_s": basic,
        "parallel_s": parallel,
        "speed_up": basic / parallel,
    }
    print(
        f"{args.jobs} jobs of {args.epochs} epochs: basic launcher {basic:.1f} s, parallel {parallel:.1f} s "
        f"({basic / parallel:.2f}x)"
    )
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"Written: {args.out}")


if __name__ == "__main__":
    main()
