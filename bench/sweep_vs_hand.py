"""A dlkit sweep against the script a user would write by hand for the same work, as whole-process wall times.

    python bench/sweep_vs_hand.py [--repeats 3] [--seeds 12] [--dlkit-path DIR] [--out bench/sweep_vs_hand.json]

dlkit:  python -m dlkit -m seed=0,...,N-1 paths.output_dir=TMP   (the default run: MLP on digits, 30 epochs, sqlite)
hand:   python bench/hand_sweep.py --seeds N --out-dir TMP2       (the same training and split, plain PyTorch + MLflow)

Each command is a fresh process in a fresh temporary output folder (a new MLflow store each time), timed from its
start to its exit (time.perf_counter around subprocess.run: imports, set-up, training, logging and tear-down all
count). The two run in pairs, in alternating order (dlkit first in even repeats, the hand script first in odd ones),
after one untimed warm-up pair (--warmup). Reported: every wall time, the medians, the ratio dlkit/hand of the
medians and the median of the per-pair ratios, and each process's CPU time (user + system, its children included:
steadier than wall time on a busy machine, but dlkit's recorder process runs beside its training, so dlkit's wall
can be below its CPU time). The JSON also keeps the machine, its load average and the commits.
--dlkit-path DIR times the dlkit of another checkout (a git worktree of an earlier commit): PYTHONPATH=DIR, run in DIR.
The hand script always comes from this checkout. The figures are noisy on a busy machine: quote medians, and the load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds from the start of `command` to its exit, and the CPU seconds (user + system) of it and the
    children it waited for. A failing command stops the benchmark with its output."""
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def commit(path: Path) -> str:
    """HEAD of the checkout at path, with '+dirty' when it has uncommitted changes."""
    git = ["git", "-C", str(path)]
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True).stdout.strip()
    return head + ("+dirty" if dirty else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed pairs")
    parser.add_argument("--warmup", type=int, default=1, help="untimed pairs first (page cache, .pyc files)")
    parser.add_argument("--seeds", type=int, default=12)
    parser.add_argument("--dlkit-path", type=Path, default=ROOT, help="the checkout whose dlkit is timed")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "sweep_vs_hand.json")
    args = parser.parse_args()
    dlkit_path = args.dlkit_path.resolve()
    seeds = ",".join(map(str, range(args.seeds)))
    env = {**os.environ, "PYTHONPATH": str(dlkit_path)}

    def run(side: str) -> tuple[float, float]:
        with tempfile.TemporaryDirectory() as tmp:
            if side == "dlkit":
                dlkit = [sys.executable, "-m", "dlkit", "-m", f"seed={seeds}", f"paths.output_dir={tmp}"]
                return timed(dlkit, dlkit_path, env)
            hand = [sys.executable, str(ROOT / "bench" / "hand_sweep.py"), "--seeds", str(args.seeds), "--out-dir", tmp]
            return timed(hand, ROOT)

    load_before = os.getloadavg()
    for side in ("dlkit", "hand") * args.warmup:
        run(side)
    pairs = []
    for repeat in range(args.repeats):
        order = ("dlkit", "hand") if repeat % 2 == 0 else ("hand", "dlkit")
        pair: dict = {"first": order[0]}
        for side in order:
            wall, cpu = run(side)
            pair.update({f"{side}_wall_s": round(wall, 3), f"{side}_cpu_s": round(cpu, 3)})
        pair["ratio"] = round(pair["dlkit_wall_s"] / pair["hand_wall_s"], 3)
        pairs.append(pair)
        print(
            f"repeat {repeat + 1}/{args.repeats} ({order[0]} first): dlkit {pair['dlkit_wall_s']:.2f} s"
            f" (cpu {pair['dlkit_cpu_s']:.2f}), hand {pair['hand_wall_s']:.2f} s (cpu {pair['hand_cpu_s']:.2f}),"
            f" dlkit/hand {pair['ratio']:.2f}",
            flush=True,
        )
    median = {key: round(statistics.median(p[key] for p in pairs), 3) for key in pairs[0] if key != "first"}
    result = {
        "seeds": args.seeds,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "pairs": pairs,
        "median": median,  # each figure's median over the pairs ("ratio": the median of the per-pair ratios)
        "wall_ratio_of_medians": round(median["dlkit_wall_s"] / median["hand_wall_s"], 3),
        "cpu_ratio_of_medians": round(median["dlkit_cpu_s"] / median["hand_cpu_s"], 3),
        "dlkit_path": str(dlkit_path),
        "dlkit_commit": commit(dlkit_path),
        "hand_commit": commit(ROOT),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "load_avg_before": load_before,
            "load_avg_after": os.getloadavg(),
        },
        "versions": {name: version(name) for name in ("torch", "mlflow", "pytorch-lightning", "hydra-core")},
    }
    print(
        f"median wall: dlkit {median['dlkit_wall_s']:.2f} s, hand {median['hand_wall_s']:.2f} s,"
        f" dlkit/hand {result['wall_ratio_of_medians']:.2f} (median pair ratio {median['ratio']:.2f});"
        f" median cpu: dlkit {median['dlkit_cpu_s']:.2f} s, hand {median['hand_cpu_s']:.2f} s"
    )
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"Written: {args.out}")


if __name__ == "__main__":
    main()
