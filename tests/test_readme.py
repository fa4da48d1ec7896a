"""The README's option and study tables against conf/: an option added or removed shows here, not to a user."""

import re
from pathlib import Path

import pytest

from dlkit import config, studies

README = (Path(__file__).parent.parent / "README.md").read_text()


def table_rows(header: str) -> dict[str, str]:
    """{first cell's name: the rest of the row} for the Markdown table under the line starting with `header`."""
    lines = README[README.index(header) :].splitlines()[2:]
    rows = {}
    for line in lines:
        if not line.startswith("|"):
            break
        first, rest = line.strip("|").split("|", 1)
        rows[first.strip().strip("`")] = rest
    return rows


OPTIONS = table_rows("| group | options | notes |")


def test_the_option_table_names_every_config_group():
    groups = {p.name for p in config.CONF_DIR.iterdir() if p.is_dir() and p.name not in ("hydra", "study")}
    assert set(OPTIONS) == groups


@pytest.mark.parametrize("group", sorted(OPTIONS))
def test_each_groups_options_are_its_yaml_files(group):
    options_cell = OPTIONS[group].split("|")[0].split("(+")[0]  # "(+ `swish` from the plugin)" is a plugin's
    listed = set(re.findall(r"`([^`]+)`", options_cell))
    assert listed == {p.stem for p in (config.CONF_DIR / group).glob("*.yaml")}


def test_the_study_table_names_every_study():
    assert set(table_rows("| study | claim | control → treatment | deciding metric |")) == set(studies.names())


def examples() -> list[str]:
    """The training commands of the README's first block of examples (`dlkit key=value ...`, one run each)."""
    block = README[README.index("## Running experiments") :].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#", 1)[0].split() for line in block.splitlines() if line.startswith("dlkit ")]
    return [" ".join(c[1:]) for c in commands if c[1] not in ("check", "resume", "-m", "--cfg", "--help")]


@pytest.mark.parametrize("example", examples())
def test_each_readme_example_trains_to_better_than_chance(example):
    from conftest import dlkit_cli

    # three epochs: an example that trains to chance (Adam at lr 0.05 on LeNet-5) is at chance from the first
    done = dlkit_cli(*example.split(), "tracking=none", "trainer.max_epochs=3", timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "no better than" not in done.stdout + done.stderr, done.stdout[-500:]


def test_a_run_no_better_than_chance_says_so_and_is_tagged(tmp_path):
    from mlflow.tracking import MlflowClient

    from conftest import all_runs, dlkit_cli

    # Adam at lr 0.05 sends LeNet-5 to a constant prediction (the README's old first example).
    done = dlkit_cli(
        "model=lenet5", "activation=tanh", "optimizer.lr=0.05", "trainer.max_epochs=3", f"paths.output_dir={tmp_path}"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    warned = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("warning: test/acc")]
    assert warned and "no better than always predicting the most frequent class" in warned[0]
    (run,) = all_runs(MlflowClient(f"sqlite:///{tmp_path}/mlflow.db"))
    assert run.info.status == "FINISHED" and run.data.tags["dlkit.warning"] == "chance_level"
    assert run.data.tags["dlkit.warning_reason"] in warned[0]


def test_the_search_table_names_every_option_of_the_search_sweeper():
    import yaml

    table = README[README.index("| `hydra.sweeper.` | default |") :].split("\n\n", 1)[0]
    options = yaml.safe_load((config.CONF_DIR / "hydra" / "sweeper" / "optuna.yaml").read_text())
    assert set(options) - {"_target_"} <= set(re.findall(r"`([a-z_]+)`", table))
