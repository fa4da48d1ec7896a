"""Tasks: their metrics on hand-made batches, and mismatches rejected before training."""

import math
import types

import pytest
import torch

import dlkit
from dlkit import config
from dlkit.build import build
from dlkit.errors import ConfigError
from dlkit.registry import registry


def task(name):
    return registry("task").get(name)


def epoch_metrics(name, outputs, y, shape=()):
    """A task's metrics over hand-made outputs, through the same calls an epoch makes."""
    t = task(name)
    it = types.SimpleNamespace(shape=shape)
    sums = t.sums(it, t.predict(it, outputs), y).tolist()
    return t.epoch_metrics(it, sums, len(y))


def test_classification_metrics_by_hand():
    logits = torch.tensor([[2.0, 0, 0], [0, 2.0, 0], [0, 2.0, 0], [0, 0, 2.0]])
    y = torch.tensor([0, 1, 0, 2])  # third is wrong: class 0 recall 1/2, classes 1 and 2 recall 1
    assert epoch_metrics("classification", logits, y, shape=(3,)) == {"acc": 0.75, "recall_min": 0.5}


def test_epoch_metrics_weigh_batches_by_size():
    """Batches of 2 and 1 samples: the epoch's loss is the mean over samples, not over batches."""
    t = registry("task").get("classification")(
        model=torch.nn.Identity(), loss=torch.nn.CrossEntropyLoss(), optimizer=None, shape=(2,)
    )
    ln3 = math.log(3)
    t._step((torch.tensor([[0.0, 0.0], [ln3, 0.0]]), torch.tensor([0, 0])), "val")  # losses ln 2, ln 4/3; both hit
    t._step((torch.tensor([[ln3, 0.0]]), torch.tensor([1])), "val")  # loss ln 4; a miss
    sums, n = t._epoch_sums("val")
    loss_sum, *stats = sums.tolist()  # as _log_epoch reads them
    assert n == 3 and loss_sum == pytest.approx(math.log(2) + math.log(4 / 3) + math.log(4))
    assert t.epoch_metrics(stats, n) == {"acc": 2 / 3, "recall_min": 0.0}
    assert t._epoch_sums("val") is None  # the epoch's records are gone once used


def test_binary_metrics_by_hand():
    logits, y = torch.tensor([1.0, -1.0, 2.0, -3.0]), torch.tensor([1, 1, 0, 0])
    assert epoch_metrics("binary", logits, y) == {"acc": 0.5, "recall": 0.5}


def test_regression_metrics_by_hand():
    assert epoch_metrics("regression", torch.tensor([1.0, 2.0]), torch.tensor([0.0, 4.0])) == {"mse": 2.5, "mae": 1.5}


def test_seq2seq_metrics_ignore_padding():
    logits = torch.zeros(2, 3, 4)
    logits[0, 0, 1] = logits[0, 1, 2] = 1  # sequence 1: tokens 1, 2 → right, right
    logits[1, 0, 3] = logits[1, 1, 3] = 1  # sequence 2: predicts 3, 3 for 3, 1 → one right
    y = torch.tensor([[1, 2, 0], [3, 1, 0]])
    assert epoch_metrics("seq2seq", logits, y) == {"token_acc": 0.75, "seq_acc": 0.5}


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["loss=bce"], "loss 'bce' does not fit a classification task"),
        (["data=reverse", "loss=mse"], "loss 'mse' does not fit a seq2seq task"),
        (["task=binary", "loss=bce"], "task 'binary' needs two classes; data 'digits' (inputs (1, 8, 8), 10 classes)"),
        (["task=regression", "loss=mse"], "task 'regression' trains on value targets; data 'digits'"),
        (
            ["data=regression_outliers", "task=classification", "loss=cross_entropy"],
            "task 'classification' trains on class targets",
        ),
        (
            ["model=lenet5", "data=mnist1d"],
            "data.resize=32 applies to images; data 'mnist1d' (inputs (1, 40), 10 classes) has no height",
        ),
        (
            ["model=lenet5", "data=mnist1d", "~data.resize"],
            "lenet5 needs images (channels, height, width); the data has shape (1, 40)",
        ),
        (["model=resnet", "data=spirals"], "resnet needs images"),
        (["model=cnn", "data=reverse"], "model 'cnn' cannot read token inputs (data 'reverse'"),
        (
            ["model=cnn", "model.blocks=[{channels: 4, kernel: 3, stride: 2}]"],
            "cnn conv1: output size (input 8 − kernel 3 + 2·padding 0) / stride 2 + 1 = 3.5 is not whole",
        ),
        (
            ["model=cnn", "model.blocks=[{channels: 4, kernal: 3}]"],
            "cnn block 1: unknown key 'kernal'; did you mean 'kernel'?",
        ),
        (["optimizer.batch_size=0"], "optimizer.batch_size must be a whole number ≥ 1 (or null), got 0"),
    ],
)
def test_mismatches_fail_before_training(overrides, message):
    with pytest.raises(ConfigError) as err:
        build(dlkit.plan_for([*overrides, "data.limit=32"]))
    assert message in str(err.value)


def test_data_picks_its_task_and_loss_unless_told_otherwise():
    cfg = config.compose(["data=regression_outliers"])
    assert (cfg.task.name, cfg.loss.name) == ("regression", "mse")
    assert config.compose(["data=regression_outliers", "loss=mae"]).loss.name == "mae"
    assert (config.compose(["data=reverse"]).task.name, config.compose(["data=reverse"]).loss.name) == (
        "seq2seq",
        "sequence_cross_entropy",
    )


@pytest.mark.parametrize("optimizer,expected", [("gd", 48), ("sgd", 1), ("minibatch", 32), ("adam", 32)])
def test_gradient_descent_variants_set_their_batch_size(optimizer, expected, tmp_path):
    overrides = [f"optimizer={optimizer}", "data.limit=48", "trainer.max_epochs=1", f"paths.output_dir={tmp_path}"]
    assert build(dlkit.plan_for(overrides)).batch_size == expected
    result = dlkit.run(overrides)
    from mlflow.tracking import MlflowClient

    run = MlflowClient(result.tracking_uri).get_run(result.run_id)
    assert run.data.params["optimizer.batch_size"] == str(expected)  # the logged param shows the batch size in effect


def test_full_batch_gd_makes_one_update_per_epoch():
    experiment = build(dlkit.plan_for(["optimizer=gd", "data.limit=48"]))
    assert len(experiment.loaders["train"]) == 1


def test_cnn_is_1d_for_signals_and_2d_for_images():
    signal = build(dlkit.plan_for(["model=cnn", "data=mnist1d", "data.limit=8"])).task.model
    image = build(dlkit.plan_for(["model=cnn", "data.limit=8"])).task.model
    assert isinstance(signal[0], torch.nn.Conv1d) and isinstance(image[0], torch.nn.Conv2d)


def test_learning_rate_is_logged_per_epoch_and_follows_the_scheduler():
    result = dlkit.run(
        [
            "scheduler=step",
            "scheduler.step_size=1",
            "scheduler.gamma=0.5",
            "optimizer.lr=0.1",
            "trainer.max_epochs=3",
            "data.limit=32",
            "tracking=none",
        ]
    )
    assert result.metrics["train/lr"] == pytest.approx(0.1 * 0.5**2)  # the lr of the last epoch


@pytest.mark.parametrize(
    "extra",
    [
        [],
        ["dropout=inverted", "scheduler=step", "scheduler.step_size=1", "norm=batch"],
        ["trainer.gradient_clip_val=0.05"],
    ],
    ids=["plain", "dropout+scheduler+batchnorm", "gradient clipping"],
)
def test_several_steps_per_lightning_step_train_exactly_as_one(extra):
    # 150 samples in batches of 16: 10 optimizer steps an epoch, in calls of 1, 3 (a short last call) or 64 steps.
    common = ["data.limit=150", "optimizer.batch_size=16", "trainer.max_epochs=3", "tracking=none", *extra]
    runs = {k: dlkit.run([*common, f"steps_per_call={k}"]).metrics for k in (1, 3, 64)}
    for metrics in runs.values():
        metrics.pop("train/epoch_seconds")
    assert runs[1] == runs[3] == runs[64]


def test_gradient_clipping_changes_the_updates():
    common = ["data.limit=150", "optimizer=minibatch", "optimizer.lr=0.5", "trainer.max_epochs=2", "tracking=none"]
    clipped = dlkit.run([*common, "trainer.gradient_clip_val=0.01"]).metrics["train/loss"]
    assert clipped != dlkit.run(common).metrics["train/loss"]


def test_limit_train_batches_counts_batches_not_calls():
    from dlkit.data.tensors import Chunks

    loader = build(dlkit.plan_for(["data.limit=150", "optimizer.batch_size=16"])).loaders["train"]  # 10 batches
    assert [len(chunk) for chunk in Chunks(loader, 3)] == [3, 3, 3, 1]
    assert [len(chunk) for chunk in Chunks(loader, 3, limit=4)] == [3, 1] and len(Chunks(loader, 3, limit=4)) == 2
    assert sum(len(chunk) for chunk in Chunks(loader, 64, limit=0.5)) == 5
    steps = dlkit.run(
        [
            "data.limit=150",
            "optimizer.batch_size=16",
            "trainer.max_epochs=2",
            "tracking=none",
            "trainer.limit_train_batches=4",
        ]
    ).metrics  # accepted: dlkit, not Lightning, applies it
    assert "train/loss" in steps


def test_limit_val_batches_counts_validation_batches():
    # 600 validation samples in evaluation batches of 256: 256, 256, 88.
    common = ["data=spirals", "data.samples=3000", "data.val_fraction=0.2", "trainer.max_epochs=2", "tracking=none"]
    one = dlkit.run([*common, "trainer.limit_val_batches=1"]).metrics
    whole = dlkit.run(common).metrics
    assert one["val/acc"] * 256 == round(one["val/acc"] * 256) and one["val/loss"] != whole["val/loss"]
    assert "val/loss" not in dlkit.run([*common, "trainer.limit_val_batches=0"]).metrics  # Lightning's "no validation"


@pytest.mark.parametrize("overrides", [["data.limit=40"], ["task=binary", "data=moons", "loss=bce", "data.limit=40"]])
def test_the_confusion_matrix_is_counted_from_the_test_pass_as_a_second_pass_would(overrides):
    import pytorch_lightning as pl

    from dlkit.callbacks import confusion

    experiment = build(dlkit.plan_for(overrides))
    task, test = experiment.task, experiment.loaders["test"]
    trainer = pl.Trainer(
        logger=False, enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False
    )
    trainer.test(task, [test, experiment.loaders["train_eval"]], verbose=False)
    assert task.test_predictions is not None and len(task.test_predictions[0]) == len(test.split)
    kept = confusion(task, test)
    task.test_predictions = None  # now counted by running the model over the test split again
    again = confusion(task, test)
    assert kept == again
    assert sum(map(sum, kept)) == len(test.split)
    assert sum(kept[i][i] for i in range(len(kept))) / len(test.split) == pytest.approx(task.metrics["test/acc"])
    task.test_predictions = (torch.rand(len(test.split), 2), test.split.y)  # a plugin's predict keeping scores
    assert confusion(task, test) is None  # no class labels: no matrix


def test_chance_level_is_the_majority_share_within_two_standard_errors_or_the_variance():
    import torch

    from dlkit.tasks.classification import Classification
    from dlkit.tasks.regression import Regression

    y = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)  # always predicting class 0 scores 0.6
    assert Classification.chance(y) == {"acc": pytest.approx(0.6)}
    margin = 2 * (0.6 * 0.4 / 100) ** 0.5  # two binomial standard errors over 100 test samples: 0.098
    assert Classification.chance_level({"test/acc": 0.6 + margin - 1e-6}, y).startswith("test/acc 0.6980 is no better")
    assert Classification.chance_level({"test/acc": 0.6 + margin + 1e-6}, y) == ""
    values = torch.tensor([1.0, 2.0, 3.0, 6.0])  # mean 3, variance (4 + 1 + 0 + 9) / 4 = 3.5
    assert Regression.chance(values) == {"mse": pytest.approx(3.5)}
    assert "always predicting the mean (3.5000)" in Regression.chance_level({"test/mse": 3.5}, values)
    assert Regression.chance_level({"test/mse": 3.4}, values) == ""


def test_each_task_judges_its_own_chance_level_on_hand_computed_numbers():
    y = torch.tensor([0, 1] * 50)  # binary, balanced: chance 0.5, two standard errors 2 · √(0.25 / 100) = 0.1
    binary = task("binary")
    assert binary.chance(y) == {"acc": 0.5}
    assert "test/acc 0.5990 is no better than always predicting the most frequent class (0.5000)" in (
        binary.chance_level({"test/acc": 0.599, "test/recall": 1.0}, y)
    )
    assert binary.chance_level({"test/acc": 0.601}, y) == ""
    # seq2seq: 25 sequences of tokens 1, 1, 2 and a pad; token 1 is 2/3 of the real tokens, and the standard error
    # is over the test sequences: 2 · √((2/3)(1/3) / 25) = 0.1886, so chance reaches 0.8552
    sequences = torch.tensor([[1, 1, 2, 0]] * 25)
    seq2seq = task("seq2seq")
    assert seq2seq.chance(sequences) == {"token_acc": pytest.approx(2 / 3)}
    assert seq2seq.chance_level({"test/token_acc": 0.85, "test/seq_acc": 0.0}, sequences).startswith(
        "test/token_acc 0.8500 is no better than always predicting the most frequent token (0.6667)"
    )
    assert seq2seq.chance_level({"test/token_acc": 0.86, "test/seq_acc": 0.0}, sequences) == ""
    # regression: targets 0, 0, 0, 4: mean 1, variance (1 + 1 + 1 + 9) / 4 = 3; an MSE of 3 or more is chance
    values = torch.tensor([0.0, 0.0, 0.0, 4.0])
    regression = task("regression")
    assert regression.chance_level({"test/mse": 3.0, "test/mae": 0.0}, values).startswith(
        "test/mse 3.0000 is no better than always predicting the mean (3.0000)"
    )
    assert regression.chance_level({"test/mse": 2.99}, values) == ""
    assert regression.chance_level({"test/mae": 9.0}, values) == ""  # no MSE logged: nothing to judge
    assert task("classification").chance_level({}, y) == ""
