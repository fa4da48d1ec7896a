"""The README, the five-minute tour: the set-up commands CI reads from it, its links, its length, and its commands
run as their blocks are marked (tests/markdown_pages.py). The documentation's own pages: tests/test_docs.py."""

import re
import subprocess

import pytest

import markdown_pages as md

README = md.page("README.md")


def test_the_readme_keeps_the_two_set_up_commands_and_ci_finds_its_test_command():
    assert "\npip install -e . && dlkit " in README
    assert "\npip install -e '.[test]' && pytest " in README
    ci = (md.REPO / ".ci" / "run").read_text()
    grep = re.search(r"test_command=\$\((.+)\)\n", ci).group(1)  # .ci/run's own reading of the README
    found = subprocess.run(["bash", "-c", grep], cwd=md.REPO, capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "pip install -e '.[test]' && pytest"


def test_the_readme_is_a_five_minute_read():
    assert len(README.splitlines()) <= 150


def test_the_readmes_links_lead_to_files_that_exist():
    links = [link for link in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README) if "://" not in link]
    assert links and all((md.REPO / link).is_file() for link in links), links


def test_the_tour_shows_one_run_one_sweep_one_study_and_the_mlflow_view():
    commands = [command for block in md.blocks("README.md") for command in block.commands]
    assert any(c and not c[0].startswith("-") for c in commands)  # one run
    assert ("report",) in commands and any(c[:1] == ("-m",) for c in commands)  # a sweep and its report
    assert any(a.startswith("+study=") for c in commands for a in c)  # a study
    assert ("ui",) in commands


@pytest.mark.parametrize("block", md.blocks("README.md"), ids=lambda block: block.where)
def test_each_readme_command_is_planned_or_run(block, tmp_path):
    """As a block of docs/ is (tests/test_docs.py). The tour's one run is planned here: docs/getting-started.md's
    examples run it."""
    md.check(block, tmp_path)


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
