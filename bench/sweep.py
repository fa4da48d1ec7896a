"""The fixed cost of a sweep job: a 12-job `dlkit -m` sweep against the sum of its hand-written trainings.

    python bench/sweep.py [--jobs 12] [--epochs 10] [--out bench/sweep_results.json]

Both sweeps (12 jobs, then 1 job) run as real `dlkit -m` processes on the basic launcher with default
tracking, so their difference holds 11 jobs and no process start-up. Each job's hand-written training
(bench/speed.py's loop: the same model, data, batches and epochs) is timed in this process. The fixed
cost per job is (wall(12) - wall(1)) / 11 minus the mean hand-written training time: run creation,
config and param logging, artifacts, trainer set-up and tear-down, closing the run.
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

from speed import hand_written

CASE = ["data=mnist1d", "model=mlp", "model.hidden=[100,100]", "optimizer.batch_size=64"]


def sweep_wall(seeds: list[int], epochs: int, outputs: Path, case: list[str] = CASE) -> float:
    """The wall time of `dlkit -m seed=<seeds> <case>` as a fresh process."""
    command = [
        sys.executable,
        "-m",
        "dlkit",
        "-m",
        f"seed={','.join(map(str, seeds))}",
        *case,
        f"trainer.max_epochs={epochs}",
        f"paths.output_dir={outputs}",
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", default="bench/sweep_results.json")
    args = parser.parse_args()
    hand = []
    for seed in range(args.jobs):
        start = time.perf_counter()
        hand_written([*CASE, f"seed={seed}"], args.epochs, "cpu")
        hand.append(time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as tmp:
        one = sweep_wall([0], args.epochs, Path(tmp) / "one")
        many = sweep_wall(list(range(args.jobs)), args.epochs, Path(tmp) / "many")
    per_job = (many - one) / (args.jobs - 1)
    fixed = per_job - statistics.fmean(hand)
    result = {
        "jobs": args.jobs,
        "epochs": args.epochs,
        "case": CASE,
        "sweep_wall_s": many,
        "one_job_sweep_wall_s": one,
        "hand_training_s": hand,
        "sum_hand_training_s": sum(hand),
        "per_job_s": per_job,
        "fixed_cost_per_job_s": fixed,
    }
    print(
        f"{args.jobs}-job sweep {many:.1f} s (1-job sweep {one:.1f} s); sum of hand-written trainings {sum(hand):.1f} "
        "s;"
        f" per job {per_job:.2f} s of which fixed {fixed:.2f} s"
    )
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"Written: {args.out}")


if __name__ == "__main__":
    main()
