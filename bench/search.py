"""What pruning buys a search, and what a second worker buys: the same Optuna search run whole, pruned, and pruned with
two parallel workers, as real `dlkit -m hydra/sweeper=optuna` processes, each arm with the same sampler seeds.

    python bench/search.py [--trials 40] [--epochs 30] [--seeds 3] [--out bench/search_results.json]

The workload: MNIST-1D, an MLP, learning rate × width × dropout. For each arm and seed: the wall time of the
command, the epochs trained over all trials (from the study's reported epochs), and the best objective (val/loss)
reached. The data set is generated once, before the arms (2.5 s, as for any search after the first on a folder):
its making is not the search's cost, and would be the same in every arm. Targets (issue 29): pruned, at most half
the epochs and the wall time of the whole search, with a best objective within the whole search's seed-to-seed
spread; two workers at most 0.6x the time of one.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

SPACE = [
    "data=mnist1d",
    "model=mlp",
    "dropout=inverted",
    "optimizer.lr=tag(log,interval(0.0001,0.3))",
    "model.hidden=choice([32],[64,64],[128,128],[256,256])",
    "dropout.p=interval(0.0,0.5)",
    "optimizer.batch_size=64",
]
ARMS = {
    "whole": ["hydra.sweeper.pruner=none"],
    "pruned": ["hydra.sweeper.pruner=median"],
    "pruned, 2 workers": ["hydra.sweeper.pruner=median", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2"],
}


def run(arm: list[str], seed: int, trials: int, epochs: int, outputs: Path, data: Path) -> dict:
    command = [
        sys.executable,
        "-m",
        "dlkit",
        "-m",
        "hydra/sweeper=optuna",
        f"hydra.sweeper.n_trials={trials}",
        f"hydra.sweeper.seed={seed}",
        *SPACE,
        *arm,
        f"trainer.max_epochs={epochs}",
        f"paths.output_dir={outputs}",
        f"data.cache_dir={data}",
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    url = f"sqlite:///{outputs}/optuna.db"
    (name,) = optuna.get_all_study_names(url)
    study = optuna.load_study(study_name=name, storage=url)
    return {
        "wall_s": wall,
        "epochs": sum(len(t.intermediate_values) for t in study.trials),
        "pruned": sum(t.state.name == "PRUNED" for t in study.trials),
        "best": study.best_value,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default="bench/search_results.json")
    args = parser.parse_args()
    results: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    with tempfile.TemporaryDirectory() as data:
        from dlkit.data.mnist1d import mnist1d

        mnist1d(cache_dir=data)
        for seed in range(args.seeds):
            for arm, overrides in ARMS.items():
                with tempfile.TemporaryDirectory() as tmp:
                    outputs = Path(tmp) / "outputs"
                    results[arm].append(run(overrides, seed, args.trials, args.epochs, outputs, Path(data)))
                print(arm, seed, results[arm][-1], flush=True)
    whole = results["whole"]
    summary = {}
    for arm, rows in results.items():
        summary[arm] = {
            "wall_s": statistics.median(r["wall_s"] for r in rows),
            "epochs": statistics.median(r["epochs"] for r in rows),
            "best": [r["best"] for r in rows],
            "wall_vs_whole": statistics.median(r["wall_s"] / w["wall_s"] for r, w in zip(rows, whole)),
            "epochs_vs_whole": statistics.median(r["epochs"] / w["epochs"] for r, w in zip(rows, whole)),
        }
    summary["pruned, 2 workers"]["wall_vs_one_worker"] = statistics.median(
        r["wall_s"] / p["wall_s"] for r, p in zip(results["pruned, 2 workers"], results["pruned"])
    )
    report = {
        "machine": f"{platform.processor() or platform.machine()}, {platform.system()}",
        "trials": args.trials,
        "epochs": args.epochs,
        "seeds": args.seeds,
        "space": SPACE,
        "runs": results,
        "summary": summary,
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    for arm, row in summary.items():
        print(f"{arm:18} " + "  ".join(f"{k} {v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
