"""The documentation site (docs/, mkdocs.yml) against the code: its tables against conf/, every page in the
navigation, and every `dlkit` command on its pages planned, run or skipped as its block is marked
(tests/markdown_pages.py). `mkdocs build --strict` in .ci/run checks its links."""

import importlib.util
import re

import pytest
import yaml

import markdown_pages as md
from dlkit import config, studies

NAV = (md.REPO / "mkdocs.yml").read_text()


def hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", md.DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def groups() -> set[str]:
    return {p.name for p in config.CONF_DIR.iterdir() if p.is_dir() and p.name not in ("hydra", "study")}


OPTIONS = {
    re.search(r"`([^`]+)`", name).group(1): rest
    for name, rest in md.table_rows(md.page("options/index.md"), "| group | options | notes |").items()
}


def test_the_option_table_names_every_config_group():
    assert set(OPTIONS) == groups()


@pytest.mark.parametrize("group", sorted(OPTIONS))
def test_each_groups_options_are_its_yaml_files(group):
    options_cell = OPTIONS[group].split("|")[0].split("(+")[0]  # "(+ `swish` from the plugin)" is a plugin's
    listed = set(re.findall(r"`([^`]+)`", options_cell))
    assert listed == {p.stem for p in (config.CONF_DIR / group).glob("*.yaml")}


@pytest.mark.parametrize("group", sorted(groups()))
def test_each_group_has_a_page_that_shows_its_yaml_files(group):
    page = md.page(f"options/{group}.md")
    assert f"<!-- options: {group} -->" in page
    shown = hooks().expand(page)
    for path in (config.CONF_DIR / group).glob("*.yaml"):
        assert f"### `{group}={path.stem}`" in shown
        section = shown.split(f"### `{group}={path.stem}`", 1)[1].split("\n### ", 1)[0]
        assert all(line.lstrip("# ") in section for line in path.read_text().splitlines())  # comments as prose


def test_the_top_level_keys_are_each_explained():
    keys = yaml.safe_load((config.CONF_DIR / "config.yaml").read_text())
    section = md.page("options/index.md").split("## Top-level keys", 1)[1]
    named = set(re.findall(r"^- `([a-z_.]+)`", section, re.MULTILINE))
    expected = {k for k in keys if k not in ("defaults", "hydra", "paths")} | {f"paths.{k}" for k in keys["paths"]}
    assert named == expected


def test_the_studies_table_shows_every_study_preset():
    shown = hooks().expand(md.page("studies.md"))
    rows = md.table_rows(shown, "| study | claim | control → treatment")
    assert set(rows) == set(studies.names())
    for name in studies.names():
        claim = yaml.safe_load((config.CONF_DIR / "study" / f"{name}.yaml").read_text())["study"]["claim"]
        assert claim in rows[name]


def test_the_latest_verdicts_name_every_study():
    verdicts = md.table_rows(md.page("studies.md"), "| study | levels (deciding metric) |")
    assert set(verdicts) == set(studies.names())


def test_the_search_table_names_every_option_of_the_search_sweeper():
    page = md.page("search.md")
    table = page[page.index("| `hydra.sweeper.` | default |") :].split("\n\n", 1)[0]
    options = yaml.safe_load((config.CONF_DIR / "hydra" / "sweeper" / "optuna.yaml").read_text())
    assert set(options) - {"_target_"} <= set(re.findall(r"`([a-z_]+)`", table))


def excerpts() -> list[tuple[str, str, str]]:
    """(page, file, YAML) of every ```yaml block that starts with `# conf/<file>.yaml`: a part of that file."""
    found = []
    for name in md.pages():
        for path, body in re.findall(r"```yaml\n# (conf/\S+\.yaml)[^\n]*\n(.*?)```", md.page(name), re.DOTALL):
            found.append((name, path, body))
    return found


def contained(part, whole) -> bool:
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(k in whole and contained(v, whole[k]) for k, v in part.items())
    return part == whole


@pytest.mark.parametrize("page, path, body", excerpts(), ids=lambda x: str(x)[:40])
def test_each_yaml_excerpt_is_part_of_its_file(page, path, body):
    file = md.REPO / path
    if not file.exists():
        pytest.skip(f"{path}: an example of a file the user writes")
    assert contained(yaml.safe_load(body), yaml.safe_load(file.read_text())), f"{page}: {path}"


def test_every_page_is_in_the_navigation():
    pages = [name for name in md.pages() if name != "README.md"]
    assert pages and all(re.search(rf"\b{re.escape(name)}\b", NAV) for name in pages), pages


def blocks() -> list[md.Block]:
    return [block for name in md.pages() if name != "README.md" for block in md.blocks(name)]


def test_the_pages_have_blocks_of_every_kind():
    kinds = {block.mark for block in blocks()}
    assert kinds == {"plan", "run", "not run"}


@pytest.mark.parametrize("block", blocks(), ids=lambda block: block.where)
def test_each_command_on_the_pages_is_planned_or_run(block, tmp_path):
    md.check(block, tmp_path)


def test_each_error_on_the_pages_is_the_one_dlkit_gives(tmp_path):
    """Each `$ dlkit ...` of a transcript followed by its error line, run as a user types it in a project folder
    (with this project's plugins/): the page may cut the message short with (…) or …, and how many CPU cores this
    machine has is its own."""
    errors = [error for name in md.pages() for error in md.errors(name)]
    given = md.last_errors([command for _, command, _ in errors], tmp_path)
    wrong = [
        f"{where}: dlkit {' '.join(command)}\n  page: {said}\n  dlkit: {actual}"
        for (where, command, said), actual in zip(errors, given)
        if not actual.startswith(re.split(r"\(…\)|…|this machine has", said)[0].rstrip())
    ]
    assert len(errors) >= 10 and not wrong, "\n".join(wrong)
