"""MkDocs hook: the pages that show conf/ show it as it is, read when the site is built.

On a page, `<!-- options: GROUP -->` becomes every option of that config group (its YAML file, comments and all),
and `<!-- studies -->` the table of the study presets' declarations. tests/test_docs.py checks that every group has
its page."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

CONF = Path(__file__).resolve().parent.parent / "conf"
MARKER = re.compile(r"^<!-- (?:options: (?P<group>[\w/]+)|(?P<studies>studies)) -->$", re.MULTILINE)
ARROWS = {"higher": "↑", "lower": "↓"}


def options(group: str) -> str:
    """Each option of a config group: `group=option`, the YAML file's leading comment as its description, the rest."""
    files = sorted((CONF / group).glob("*.yaml"))
    if not files:
        raise ValueError(f"conf/{group} has no options")
    sections = [f"Read from `conf/{group}/` when this site was built: {', '.join(f'`{f.stem}`' for f in files)}."]
    for path in files:
        lines = path.read_text().splitlines()
        package = lines[:1] if lines[0].startswith("# @package") else []  # Hydra reads it: it stays with the YAML
        lead = len(package)
        while lead < len(lines) and lines[lead].startswith("#"):
            lead += 1
        about = " ".join(line.lstrip("# ") for line in lines[len(package) : lead])
        body = "\n".join([*package, *lines[lead:]]).strip()
        sections.append(f"### `{group}={path.stem}`\n\n{about}\n\n```yaml\n{body}\n```")
    return "\n\n".join(sections)


def studies() -> str:
    """One row per study preset of conf/study/ (not the quick variants): its declaration and what it sweeps."""
    rows = [
        "| study | claim | control → treatment (levels swept) | deciding metric | seeds |",
        "|---|---|---|---|---|",
    ]
    for path in sorted(p for p in (CONF / "study").glob("*.yaml") if not p.stem.endswith("_quick")):
        preset = yaml.safe_load(path.read_text())
        study, swept = preset["study"], dict(preset["hydra"]["sweeper"]["params"])
        seeds = len(str(swept.pop("seed")).split(","))
        levels = swept.pop(study["factor"])
        held = "".join(f"; `{key}`: {values}" for key, values in swept.items())  # another factor, e.g. momentum's lr
        arms = f"{study['control']} → {study['treatment']} (`{study['factor']}`: {levels}{held})"
        metric = f"`{study['metric']}` {ARROWS[study['direction']]}"
        rows.append(f"| `{study['name']}` | {study['claim']} | {arms} | {metric} | {seeds} |")
    return "\n".join(rows)


def expand(markdown: str) -> str:
    return MARKER.sub(lambda m: studies() if m["studies"] else options(m["group"]), markdown)


def on_page_markdown(markdown: str, **_) -> str:
    return expand(markdown)
