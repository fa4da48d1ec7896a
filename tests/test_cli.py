"""The `dlkit` command as a user types it: real processes, the real store."""

import signal

import pytest

from conftest import QUICK, REPO, all_runs, dlkit_cli, start_dlkit


def test_main_job_trains_prints_test_metrics_and_how_to_browse(outputs, store):
    done = dlkit_cli(*QUICK, f"paths.output_dir={outputs}")
    assert done.returncode == 0, done.stderr
    assert "epoch 1/2" in done.stdout and "epoch 2/2" in done.stdout
    assert "test/acc" in done.stdout and "test/loss" in done.stdout
    assert "dlkit ui" in done.stdout and "/#/experiments/" in done.stdout
    (run,) = all_runs(store())
    assert run.info.status == "FINISHED" and run.info.run_id in done.stdout
    assert list((outputs / "runs").iterdir()), "Hydra's run folder lives under outputs/"


def test_unknown_option_fails_before_training_with_a_suggestion(outputs, store):
    done = dlkit_cli("activation=relux", f"paths.output_dir={outputs}")
    assert done.returncode == 2
    assert "activation 'relux' is unknown; did you mean 'relu'" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert "epoch" not in done.stdout
    assert not (outputs / "mlflow.db").exists() or all_runs(store()) == []


def test_misspelled_key_gets_the_close_key_not_hydras_plus_advice(outputs):
    done = dlkit_cli("optimizer.lrr=0.1", f"paths.output_dir={outputs}")
    assert done.returncode == 2
    assert "did you mean 'optimizer.lr'?" in done.stderr
    assert "To append to your config use" not in done.stderr and "Traceback" not in done.stderr


def test_a_bad_value_in_one_sweep_job_stops_the_sweep_before_any_job(outputs):
    done = dlkit_cli("-m", "activation=relu,tanhh", *QUICK, f"paths.output_dir={outputs}")
    assert done.returncode == 2
    assert "job 2 of 2" in done.stderr and "did you mean 'tanh'" in done.stderr
    assert not (outputs / "mlflow.db").exists()


def test_debug_switch_shows_the_traceback(outputs):
    done = dlkit_cli("activation=relux", f"paths.output_dir={outputs}", env={"DLKIT_DEBUG": "1"})
    assert done.returncode != 0 and "Traceback" in done.stderr


def test_help_lists_groups_and_their_options():
    done = dlkit_cli("--help")
    assert done.returncode == 0
    listed = dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line and not line.startswith(" "))
    for folder in (REPO / "conf").iterdir():
        # conf/hydra/launcher: presets of Hydra's own group (--hydra-help).
        if folder.is_dir() and folder.name != "hydra":
            # a group the defaults do not select is shown as Hydra's command line adds it: +study=NAME
            shown = listed["+" + folder.name] if folder.name == "study" else listed[folder.name]
            assert set(shown.split(", ")) >= {f.stem for f in folder.glob("*.yaml")}, folder.name
    assert "swish" in listed["activation"].split(", ")  # the plugin's option
    assert "dlkit list" in done.stdout and "dlkit ui" in done.stdout


def test_sweep_runs_each_job_and_shows_which_of_how_many(outputs, store):
    done = dlkit_cli(
        "-m", "activation=relu,tanh", "trainer.max_epochs=1", "data.limit=60", f"paths.output_dir={outputs}"
    )
    assert done.returncode == 0, done.stderr
    assert "[job 1/2]" in done.stdout and "[job 2/2]" in done.stdout
    runs = [
        r for r in all_runs(store()) if "mlflow.parentRunId" in r.data.tags
    ]  # the children; test_sweep.py checks the parent
    assert sorted(r.data.params["activation.name"] for r in runs) == ["relu", "tanh"]
    assert all(r.info.status == "FINISHED" for r in runs)
    assert (outputs / "multirun").is_dir()


def test_resume_without_an_id_asks_for_it_and_check_help_imports_no_torch():
    done = dlkit_cli("resume")
    assert done.returncode == 2 and "which run? give its id: dlkit resume RUN_ID" in done.stderr
    assert "overrides" not in done.stderr.splitlines()[-1]  # argparse called the optional overrides required
    import subprocess
    import sys

    code = (
        "import sys; from dlkit.cli import main; sys.argv = ['dlkit', 'check', '--help']; main();"
        " print('torch' in sys.modules)"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert shown.stdout.startswith("usage: dlkit check") and shown.stdout.strip().endswith("False"), shown.stderr


@pytest.mark.parametrize(
    "args,expected",
    [
        (("ui", "--port", "99999"), "dlkit ui: argument --port: 99999 is out of range: give 1 to 65535"),
        (("ui", "--port", "0"), "dlkit ui: argument --port: 0 is out of range: give 1 to 65535"),
        (("ui", "--port", "http"), "dlkit ui: argument --port: 'http' is not a whole number"),
        (("ui", "--workers", "0"), "dlkit ui: argument --workers: 0 is out of range: give 1 or more"),
        (
            ("studies", "--seeds", "-1"),
            "dlkit studies: argument --seeds: -1 is out of range: give 2 or more (a verdict needs 2 seeds per level, 5"
            " or more to decide)",
        ),
        (("report", "--bogus"), "dlkit report: unrecognized arguments: --bogus"),
    ],
)
def test_a_subcommands_bad_flag_is_one_line_and_exit_2(args, expected):
    done = dlkit_cli(*args, timeout=60)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip() == f"dlkit: error: {expected}; see dlkit {args[0]} --help"  # one line, no usage


def test_list_shows_every_kind_and_where_entries_come_from():
    done = dlkit_cli("list")
    assert done.returncode == 0
    for kind in ("model:", "activation:", "norm:", "loss:", "optimizer:", "data:", "task:"):
        assert kind in done.stdout
    lines = [line for line in done.stdout.splitlines() if line.startswith("  ")]
    rows = {tuple(line.split()) for line in lines}
    assert ("activation=relu", "relu", "dlkit") in rows and ("activation=swish", "swish", "plugins/swish") in rows
    assert ("task=classification", "classification", "dlkit") in rows
    assert ("residual=on", "identity", "dlkit") in rows  # what the command line takes, and what it selects
    from dlkit import config

    options = config.group_options()
    for option, *_ in rows:  # every option shown is one the command line accepts
        group, _, name = option.partition("=")
        assert name in options[group], option
    columns = {line.index(line.split()[1], len(line.split()[0]) + 2) for line in lines if "loss=" in line}
    assert len(columns) == 1  # aligned, sequence_cross_entropy included
    only = dlkit_cli("list", "optimizer")
    assert "momentum" in only.stdout and "activation:" not in only.stdout
    bad = dlkit_cli("list", "optimiser")
    assert bad.returncode == 2 and "did you mean 'optimizer'" in bad.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupt_during_training_ends_the_run_killed(outputs, store, signum):
    job = start_dlkit("trainer.max_epochs=100000", "data.limit=64", f"paths.output_dir={outputs}")
    try:
        for line in job.stdout:  # wait until training is under way
            if line.startswith("epoch 1/"):
                break
        job.send_signal(signum)
        job.communicate(timeout=60)
    finally:
        job.kill()
    assert job.returncode != 0
    (run,) = all_runs(store())
    assert run.info.status == "KILLED"
    assert store().get_metric_history(run.info.run_id, "train/loss"), "metrics logged before the interrupt are kept"
