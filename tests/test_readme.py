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
