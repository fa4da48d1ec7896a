"""dlkit against a hand-written PyTorch loop: seconds per epoch, same model, data, batches and maths.

    python bench/speed.py [--epochs 5] [--repeats 3] [--out bench/results.json] [--device cuda] [--compile MODE]

For each case both sides start from the same config: `dlkit.build.build` gives the same initial weights,
the same in-memory tensors and the same seeded batch order, so the hand loop repeats dlkit's updates
exactly (the final training losses are printed side by side to show it). Each epoch is a training pass
and a validation pass on both sides. dlkit runs with its default tracking (MLflow in a sqlite file).
Seconds per epoch are the median over epochs after the first (warm-up), and the ratio is the median
over repeats, all within one process. With --compile MODE (e.g. reduce-overhead: CUDA graphs on a GPU) each
repeat also runs dlkit with `compile=MODE` and reports its seconds per epoch against eager dlkit's; the first
epoch of the first repeat, which compiles (later repeats find the kernels in torch's cache), is reported apart.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

import dlkit
from dlkit import config
from dlkit.build import build
from dlkit.plan import Plan

CASES = {
    "mlp_mnist1d": ["data=mnist1d", "model=mlp", "model.hidden=[100,100]", "optimizer.batch_size=64"],
    "lenet5_digits": ["model=lenet5"],
    "resnet_digits": ["model=resnet"],
}


def hand_written(overrides: list[str], epochs: int, device: str) -> tuple[float, float]:
    """The loop a user would write: (median s/epoch after the first, last epoch's mean training loss)."""
    cfg = config.compose([*overrides, f"trainer.max_epochs={epochs}"])
    torch.set_num_threads(int(cfg.threads))
    torch.manual_seed(int(cfg.seed))  # what dlkit's seed_everything does for torch
    experiment = build(Plan.from_config(cfg))
    for loader in experiment.loaders.values():
        loader.to(torch.device(device))  # data held where the model trains, as dlkit does
    model, loss_fn = experiment.task.model.to(device), experiment.task.loss
    optimizer = experiment.task.make_optimizer(model.parameters())
    times, last_loss = [], 0.0
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        total, count = torch.zeros(()), 0
        for x, y in experiment.loaders["train"]:
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(y)
            count += len(y)
        model.eval()
        with torch.no_grad():
            correct = sum((model(x).argmax(1) == y).sum() for x, y in experiment.loaders["val"])
        float(correct)  # one sync per epoch, as dlkit does
        times.append(time.perf_counter() - start)
        last_loss = float(total) / count
    return statistics.median(times[1:] or times), last_loss  # one epoch: its own time


def with_dlkit(overrides: list[str], epochs: int, outputs: Path, device: str) -> tuple[float, float, float, float]:
    """(median s/epoch after the first, last training loss, whole-run wall seconds, first epoch's seconds)."""
    start = time.perf_counter()
    trainer = ["trainer=gpu"] if device == "cuda" else []
    result = dlkit.run(
        [
            *overrides,
            *trainer,
            f"trainer.max_epochs={epochs}",
            f"paths.output_dir={outputs}",
            "tracking.artifacts=false",
        ]
    )
    wall = time.perf_counter() - start
    from mlflow.tracking import MlflowClient

    history = sorted(
        MlflowClient(result.tracking_uri).get_metric_history(result.run_id, "train/epoch_seconds"), key=lambda m: m.step
    )
    return statistics.median(m.value for m in history[1:]), result.metrics["train/loss"], wall, history[0].value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="bench/results.json")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument(
        "--compile", metavar="MODE", help="also time dlkit with compile=MODE (default, reduce-overhead, ...)"
    )
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, overrides in CASES.items():
            rows = []
            for _ in range(args.repeats):
                hand_s, hand_loss = hand_written(overrides, args.epochs, args.device)
                dl_s, dl_loss, wall, _ = with_dlkit(overrides, args.epochs, Path(tmp) / name, args.device)
                rows.append(
                    {
                        "hand_s_per_epoch": hand_s,
                        "dlkit_s_per_epoch": dl_s,
                        "ratio": dl_s / hand_s,
                        "hand_final_loss": hand_loss,
                        "dlkit_final_loss": dl_loss,
                        "dlkit_wall_s": wall,
                    }
                )
                if args.compile:
                    c_s, c_loss, _, c_first = with_dlkit(
                        [*overrides, f"compile={args.compile}"], args.epochs, Path(tmp) / name, args.device
                    )
                    rows[-1].update(
                        {
                            "compiled_s_per_epoch": c_s,
                            "compiled_vs_eager": c_s / dl_s,
                            "compiled_first_epoch_s": c_first,
                            "compiled_final_loss": c_loss,
                        }
                    )
            ratio = statistics.median(r["ratio"] for r in rows)
            results[name] = {"overrides": overrides, "epochs": args.epochs, "repeats": rows, "median_ratio": ratio}
            print(
                f"{name:<15} hand {statistics.median(r['hand_s_per_epoch'] for r in rows):.4f} s/epoch   "
                f"dlkit {statistics.median(r['dlkit_s_per_epoch'] for r in rows):.4f} s/epoch   ratio {ratio:.2f}   "
                f"final loss hand {rows[-1]['hand_final_loss']:.6f} dlkit {rows[-1]['dlkit_final_loss']:.6f}",
                flush=True,
            )
            if args.compile:
                results[name]["median_compiled_vs_eager"] = statistics.median(r["compiled_vs_eager"] for r in rows)
                print(
                    f"{'':<15} compile={args.compile} {statistics.median(r['compiled_s_per_epoch'] for r in rows):.4f} "
                    "s/epoch   "
                    f"compiled/eager {results[name]['median_compiled_vs_eager']:.2f}   first epoch of the first repeat "
                    "(compiling) "
                    f"{rows[0]['compiled_first_epoch_s']:.1f} s   final loss {rows[-1]['compiled_final_loss']:.6f}",
                    flush=True,
                )
    machine = {
        "cpu": platform.processor() or platform.machine(),
        "cores": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": args.device,
        "compile": args.compile,
    }
    if args.device == "cuda":
        machine["gpu"] = torch.cuda.get_device_name(0)
    try:
        machine["cpu"] = next(
            line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    Path(args.out).write_text(json.dumps({"machine": machine, "cases": results}, indent=2))
    print(f"Written: {args.out}")


if __name__ == "__main__":
    main()
