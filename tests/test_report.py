"""`dlkit report` and the studies: numbers checked against a hand computation from the stored metrics."""

import math
import shutil
import statistics

import pytest

from conftest import all_runs, dlkit_cli
from dlkit import report
from dlkit.tracking import store


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A 2 × 2 factor sweep with 2 seeds: one parent, eight children."""
    outputs = tmp_path_factory.mktemp("report") / "outputs"
    done = dlkit_cli(
        "-m",
        "activation=relu,tanh",
        "norm=none,batch",
        "seed=0,1",
        "trainer.max_epochs=2",
        "data.limit=64",
        f"paths.output_dir={outputs}",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    from mlflow.tracking import MlflowClient

    return outputs, MlflowClient(f"sqlite:///{outputs}/mlflow.db")


def test_eight_tagged_children_under_one_parent(swept):
    _, client = swept
    runs = all_runs(client)
    (parent,) = [r for r in runs if r.data.tags.get("dlkit.sweep") == "parent"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 8 and len(runs) == 9
    assert {
        (c.data.tags["factor.activation"], c.data.tags["factor.norm"], c.data.tags["factor.seed"]) for c in children
    } == {(a, n, s) for a in ("relu", "tanh") for n in ("none", "batch") for s in ("0", "1")}


def test_report_numbers_equal_a_hand_computation_from_the_store(swept):
    outputs, client = swept
    built = report.load(f"sqlite:///{outputs}/mlflow.db")
    assert built.metric == "test/acc" and built.factors == ["activation", "norm"]  # seed is a replicate, not a factor
    children = [r for r in all_runs(client) if "mlflow.parentRunId" in r.data.tags]
    for factor in ("activation", "norm"):
        rows = {row["level"]: row for row in report.factor_rows(built, factor)}
        levels = sorted({c.data.tags[f"factor.{factor}"] for c in children})
        assert sorted(rows) == levels
        means = {}
        for level in levels:
            values = [c.data.metrics["test/acc"] for c in children if c.data.tags[f"factor.{factor}"] == level]
            means[level] = statistics.fmean(values)
            assert float(rows[level]["mean"]) == pytest.approx(means[level], abs=1e-6)
            assert float(rows[level]["std"]) == pytest.approx(statistics.stdev(values), abs=1e-6)
            assert rows[level]["runs"] == "4"
        baseline = built.levels(factor)[0]
        other = next(level for level in levels if level != baseline)
        assert float(rows[other]["delta"]) == pytest.approx(means[other] - means[baseline], abs=1e-4)
    grid = built.cell(activation="tanh", norm="batch")
    expected = [
        c.data.metrics["test/acc"]
        for c in children
        if (c.data.tags["factor.activation"], c.data.tags["factor.norm"]) == ("tanh", "batch")
    ]
    assert grid.n == 2 and grid.mean == pytest.approx(statistics.fmean(expected))


def test_report_command_prints_writes_and_attaches(swept):
    outputs, client = swept
    done = dlkit_cli("report", f"paths.output_dir={outputs}")
    assert done.returncode == 0, done.stderr
    assert "test/acc, mean ± std over seeds" in done.stdout and "Δ to baseline" in done.stdout
    (parent,) = [r for r in all_runs(client) if r.data.tags.get("dlkit.sweep") == "parent"]
    attached = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert attached == {
        "report/report.md",
        "report/report.html",
        "report/report.csv",
        "report/curves_activation.png",
        "report/curves_norm.png",
    }
    folder = outputs / "reports" / parent.info.run_id
    markdown = (folder / "report.md").read_text()
    assert "### activation × norm" in markdown and "(n=2)" in markdown
    assert (folder / "curves_norm.png").read_bytes()[:4] == b"\x89PNG"
    csv_lines = (folder / "report.csv").read_text().splitlines()
    assert csv_lines[0] == "factor,level,mean,std,delta,runs,beyond" and len(csv_lines) == 5
    assert "![curves_norm](curves_norm.png)" in markdown  # embedded, by a path relative to report.md
    assert "activation (pooled over the levels of norm)" in done.stdout and "activation × norm: test/acc" in done.stdout
    gap = dlkit_cli("report", "--metric", "train_eval/acc - test/acc", f"paths.output_dir={outputs}")
    assert gap.returncode == 0 and "No artists" not in gap.stderr and "Warning" not in gap.stderr, gap.stderr


def test_derived_metrics_gap_and_epochs_to_target(swept):
    outputs, client = swept
    gap = report.load(f"sqlite:///{outputs}/mlflow.db", metric="train_eval/acc - test/acc")
    assert len(gap.runs) == 8 and len(gap.values(gap.metric, {})) == 8  # never vacuous: every run is checked
    for run in gap.runs:
        assert run.metrics["train_eval/acc - test/acc"] == pytest.approx(
            run.metrics["train_eval/acc"] - run.metrics["test/acc"]
        )
    reach = report.load(f"sqlite:///{outputs}/mlflow.db", metric="epochs_to:val/acc>=0.0")
    assert len(reach.values(reach.metric, {})) == 8
    assert all(run.metrics["epochs_to:val/acc>=0.0"] == 1.0 for run in reach.runs)  # reached at once
    never = report.load(f"sqlite:///{outputs}/mlflow.db", metric="epochs_to:val/acc>=1.1")
    assert all(run.metrics["epochs_to:val/acc>=1.1"] == math.inf for run in never.runs)  # censored: never reached
    assert never.cell(activation="relu").text() == "> 2 (0/4 reached)"  # 2 epochs, none got there


@pytest.mark.parametrize("variant", ["quick", "full"])
def test_every_study_plans_every_job_and_passes_its_declaration_check(variant):
    """What `dlkit -m +study=NAME` checks before anything runs (each job's config planned, the study's declaration
    against the sweep), for both variants of every study: in-process, no training."""
    from dlkit import cli, studies

    for name in studies.names():
        preset = f"{name}_quick" if variant == "quick" else name
        plans = cli._plan_jobs([f"+study={preset}", "tracking=none"], multirun=True)
        seeds = {plan.seed for plan in plans}
        assert len(plans) >= 4 and len(seeds) >= (2 if variant == "quick" else 5), preset
    assert len(studies.names()) >= 10


# Between them: a plain comparison, diverged runs, guards on a derived metric, two factors with comparisons at held
# levels. Every study's plan is checked above; these three also run. (A censored outcome, epochs_to, is derived from
# a real sweep in test_derived_metrics_gap_and_epochs_to_target and decided on hand-made runs in test_verdict.py.)
RUN_END_TO_END = ("dropout", "learning_rate", "momentum")


def test_studies_run_their_quick_variants_and_write_one_document(tmp_path):
    from dlkit import studies

    done = dlkit_cli("studies", "--only", ",".join(RUN_END_TO_END), f"paths.output_dir={tmp_path}", timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    document = (tmp_path / "reports" / "studies_quick.md").read_text()
    import re

    figures = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", document)
    assert len(figures) >= len(RUN_END_TO_END) and all((tmp_path / "reports" / f).is_file() for f in figures), figures
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = all_runs(client)
    for name in RUN_END_TO_END:
        row = next(line for line in document.splitlines() if line.startswith(f"| {name} |"))
        assert "**smoke test, no verdict**" in row, row  # a quick variant decides nothing
        (parent,) = [r for r in runs if r.data.tags.get("dlkit.study") == name]
        assert parent.info.status == "FINISHED" and parent.data.tags["dlkit.study.claim"] in row
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert len(children) >= 4 and len({c.data.tags["factor.seed"] for c in children}) == 2
    assert set(RUN_END_TO_END) < set(studies.names())


def test_runs_from_two_devices_get_a_breakdown_with_time_per_epoch(swept, tmp_path):
    import shutil

    from mlflow.tracking import MlflowClient

    outputs, _ = swept
    copy = tmp_path / "store"
    shutil.copytree(outputs, copy)  # leave the shared sweep as it was
    client = MlflowClient(f"sqlite:///{copy}/mlflow.db")
    children = sorted(
        (r for r in all_runs(client) if "mlflow.parentRunId" in r.data.tags), key=lambda r: r.info.run_name
    )
    for run in children[:4]:  # as if these four had run on a GPU
        client.set_tag(run.info.run_id, "device.accelerator", "cuda")
        client.set_tag(run.info.run_id, "device.name", "NVIDIA H100")
    built = report.load(f"sqlite:///{copy}/mlflow.db")
    devices = built.devices()
    assert sorted(len(runs) for runs in devices.values()) == [4, 4] and "cuda: NVIDIA H100" in devices
    markdown = report.markdown(built)
    gpu_seconds = statistics.fmean(r.data.metrics["train/epoch_seconds"] for r in children[:4])
    assert "| cuda: NVIDIA H100 | 4 |" in markdown and f"| {gpu_seconds:.3f} |" in markdown


def test_a_real_sweep_whose_treatment_narrows_the_gap_by_lowering_test_accuracy_is_not_supported(tmp_path):
    # The quick dropout study decides here (smoke off, no training requirement): in 3 epochs dropout underfits,
    # and the gap shrinks because test accuracy falls. Its guard on test/acc makes that "not supported".
    done = dlkit_cli(
        "-m",
        "+study=dropout_quick",
        "seed=0,1,2",
        "study.smoke=false",
        "study.trained=null",
        f"paths.output_dir={tmp_path}",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    built = report.load(f"sqlite:///{tmp_path}/mlflow.db", study="dropout")
    verdict = built.verdict()
    assert verdict.comparison.diff < 0  # the gap did narrow
    assert verdict.word == "not supported" and verdict.why.startswith("test/acc fell by"), verdict.line()
    control, treated = (built.values("test/acc", {"dropout": level}) for level in ("none", "inverted"))
    assert statistics.fmean(control) - statistics.fmean(treated) > 0.02
    # The same study relaunched with a looser guard trains nothing again (its declaration is not part of a job's
    # identity) and is judged by the guard it was relaunched with.
    again = dlkit_cli(
        "-m",
        "+study=dropout_quick",
        "seed=0,1,2",
        "study.smoke=false",
        "study.trained=null",
        "study.guards={test/acc:0.5}",
        f"paths.output_dir={tmp_path}",
    )
    assert again.returncode == 0 and "Resuming sweep" in again.stdout and "epoch 1/" not in again.stdout
    rejudged = report.load(f"sqlite:///{tmp_path}/mlflow.db", study="dropout")
    assert len(rejudged.runs) == len(built.runs) and rejudged.study.guards == {"test/acc": 0.5}
    assert rejudged.verdict().why == "" and rejudged.verdict().word == "supported", rejudged.verdict().line()
    # The parent's description (its page in MLflow) gets the claim and the verdict, once, however often it is reported
    for _ in range(2):
        report.attach(rejudged, [])
    parent = store.client(f"sqlite:///{tmp_path}/mlflow.db").get_run(rejudged.parent_run_id)
    note = parent.data.tags["mlflow.note.content"]
    assert note.count(report.VERDICT_HEADING) == 1 and rejudged.study.claim in note
    assert f"**{rejudged.verdict().line()}**" in note and "by dropout" in note.split(report.VERDICT_HEADING)[0]


@pytest.mark.parametrize(
    "override,message",
    [
        ("study.treatment=invertd", "study.treatment: dropout level 'invertd' is unknown; did you mean 'inverted'?"),
        ("+study.guard={test/acc:0.1}", "study key 'guard' is unknown; did you mean 'guards'?"),
        ("study.trained=fast", "study.trained is 'fast': write it as 'metric >= value'"),
        ("study.direction=up", "study.direction is 'up': it must be higher or lower"),
    ],
)
def test_a_mistake_in_a_study_is_named_before_anything_runs(override, message, tmp_path):
    """The check `dlkit -m` makes before launching (in-process here; the first case also from the command line:
    one line, exit 2, nothing created)."""
    from dlkit import cli
    from dlkit.errors import ConfigError

    with pytest.raises(ConfigError) as raised:
        cli._plan_jobs(["+study=dropout_quick", override, f"paths.output_dir={tmp_path}"], multirun=True)
    assert message in str(raised.value)
    if override.startswith("study.treatment"):
        done = dlkit_cli("-m", "+study=dropout_quick", override, f"paths.output_dir={tmp_path}")
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "mlflow.db").exists()


def test_report_flags_pick_the_sweep_the_metric_the_experiment_and_the_folder(swept, tmp_path):
    outputs, client = swept
    (parent,) = [r for r in all_runs(client) if r.data.tags.get("dlkit.sweep") == "parent"]
    by_id = dlkit_cli(
        "report",
        "--sweep",
        parent.info.run_id,
        "--metric",
        "test/loss",
        "--out",
        str(tmp_path / "r"),
        f"paths.output_dir={outputs}",
    )
    assert by_id.returncode == 0, by_id.stderr[-2000:]
    assert "test/loss, mean ± std over seeds" in by_id.stdout and (tmp_path / "r" / "report.md").is_file()
    assert "Metric `test/loss`" in (tmp_path / "r" / "report.md").read_text()
    whole = dlkit_cli("report", "--experiment", "dlkit", "--out", str(tmp_path / "e"), f"paths.output_dir={outputs}")
    assert whole.returncode == 0 and "experiment dlkit" in (tmp_path / "e" / "report.md").read_text()
    wrong = dlkit_cli("report", "--experiment", "dlkt", f"paths.output_dir={outputs}")
    assert wrong.returncode == 2 and "experiment 'dlkt' is unknown; did you mean 'dlkit'?" in wrong.stderr


def test_a_screenshot_without_chromium_or_of_no_sweep_is_refused_in_one_line_and_changes_nothing(swept, tmp_path):
    """`dlkit report --screenshot` (drawn in tests/test_browser.py) needs a browser: without one on PATH, one line that
    says how to install it, before the store is read; and a sweep's view: --experiment has none."""
    outputs, _ = swept
    before = sorted(outputs.rglob("*"))
    bare = dlkit_cli("report", "--screenshot", f"paths.output_dir={outputs}", env={"PATH": str(tmp_path)})
    assert bare.returncode == 2 and not bare.stdout, bare.stderr[-2000:]
    (line,) = bare.stderr.strip().splitlines()
    assert line.startswith("dlkit: error: --screenshot needs Chromium") and "apt-get install chromium" in line
    if shutil.which("chromium"):
        whole = dlkit_cli("report", "--screenshot", "--experiment", "dlkit", f"paths.output_dir={outputs}")
        assert whole.returncode == 2 and not whole.stdout, whole.stderr[-2000:]
        assert whole.stderr.strip() == (
            "dlkit: error: --screenshot shows a sweep's saved view: leave out --experiment, or name a --sweep."
        )
    assert sorted(outputs.rglob("*")) == before  # no report written
