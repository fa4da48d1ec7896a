"""The hand-written equivalent of `dlkit -m seed=0,...,11`: plain PyTorch and MLflow, one process, no dlkit.

    python bench/hand_sweep.py [--seeds 12] [--epochs 30] [--out-dir DIR]

For each seed 0..N-1 it trains dlkit's default run (an MLP 64-256-128-10 with ReLU on scikit-learn's digits,
Adam lr 1e-3, batch 32, 30 epochs, one torch thread) and records it as one MLflow run in DIR/mlflow.db (sqlite):
train/val loss and accuracy per epoch (mlflow.log_metrics: one synchronous log_batch call per epoch) and the
test accuracy at the end. The data split and the batch order are dlkit's own (dlkit/data/digits.py, tensors.py),
so each seed's test accuracy matches `dlkit seed=<seed>`. bench/sweep_vs_hand.py times this against dlkit.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import mlflow
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def digits_split(split_seed: int = 0, val_fraction: float = 0.1, test_fraction: float = 0.2):
    """dlkit's digits split: the file load_digits reads, a stratified seeded split, each split in a seeded order."""
    path = Path(importlib.util.find_spec("sklearn").origin).parent / "datasets" / "data" / "digits.csv.gz"
    table = np.loadtxt(path, delimiter=",")  # read directly, as dlkit does (no sklearn import)
    x, y = table[:, :-1] / 16.0, table[:, -1].astype(np.int64)
    rng = np.random.default_rng(split_seed)
    order = rng.permutation(len(y))
    part = np.zeros(len(y), dtype=np.int8)  # 0 train, 1 val, 2 test
    for c in np.unique(y):
        group = order[y[order] == c]
        n_test, n_val = round(len(group) * test_fraction), round(len(group) * val_fraction)
        part[group[:n_test]] = 2
        part[group[n_test : n_test + n_val]] = 1
    mix = rng.permutation(len(y))
    return [(torch.as_tensor(x[i]).float(), torch.as_tensor(y[i])) for i in (mix[part[mix] == k] for k in range(3))]


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    logits = model(x)
    return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


def train_one(seed: int, data, epochs: int, batch_size: int = 32, lr: float = 1e-3) -> float:
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = data
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    batches = torch.Generator().manual_seed(seed)  # the batch order: dlkit's own generator, seeded the same way
    with mlflow.start_run(run_name=f"seed={seed}"):
        mlflow.log_params({"seed": seed, "lr": lr, "batch_size": batch_size, "epochs": epochs})
        for epoch in range(epochs):
            model.train()
            order = torch.randperm(len(y_train), generator=batches)
            loss_sum = correct = 0.0
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                logits = model(x_train[idx])
                loss = F.cross_entropy(logits, y_train[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                loss_sum += loss.item() * len(idx)
                correct += (logits.argmax(1) == y_train[idx]).sum().item()
            val_loss, val_acc = evaluate(model, x_val, y_val)
            mlflow.log_metrics(
                {
                    "train/loss": loss_sum / len(order),
                    "train/acc": correct / len(order),
                    "val/loss": val_loss,
                    "val/acc": val_acc,
                },
                step=epoch,
            )
        test_loss, test_acc = evaluate(model, x_test, y_test)
        mlflow.log_metrics({"test/loss": test_loss, "test/acc": test_acc})
    return test_acc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--out-dir", type=Path, default=Path("outputs/hand"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = args.out_dir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(f"sqlite:///{out / 'mlflow.db'}")
    if mlflow.get_experiment_by_name("hand") is None:
        mlflow.create_experiment("hand", artifact_location=(out / "artifacts").as_uri())
    mlflow.set_experiment("hand")
    data = digits_split()
    for seed in range(args.seeds):
        print(f"seed {seed}: test/acc {train_one(seed, data, args.epochs):.4f}", flush=True)


if __name__ == "__main__":
    main()
