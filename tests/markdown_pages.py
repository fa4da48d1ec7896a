"""The README and the pages of docs/ as the tests read them: their tables, their blocks of `dlkit` commands and of
Python, and the errors their transcripts show.

A ```bash block is marked by an HTML comment on the line above it, which the rendered page does not show:
`<!-- run -->`: the tests run each of its `dlkit` commands (tests/test_docs.py says how, briefly);
`<!-- not run: why -->`: the tests run none of them and report the block as skipped, with why;
no mark: each `dlkit` command is planned as `dlkit` plans it before it starts (every job composed and checked,
nothing trained or recorded). A ```python block is marked `<!-- run -->` (run in a fresh interpreter) or
`<!-- not run: why -->`."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
MARK = re.compile(r"<!-- (run|not run: (.+?)) -->\s*$")


def page(name: str) -> str:
    """A page's text: "README.md" at the top, any other under docs/ ("options/trainer.md")."""
    return (REPO / name if name == "README.md" else DOCS / name).read_text()


def pages() -> list[str]:
    """The README and every page of docs/, by the names page() takes."""
    return ["README.md", *sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))]


def table_rows(text: str, header: str) -> dict[str, str]:
    """{first cell's name: the rest of the row} for the Markdown table under the line starting with `header`."""
    lines = text[text.index(header) :].splitlines()[2:]
    rows = {}
    for line in lines:
        if not line.startswith("|"):
            break
        first, rest = line.strip("|").split("|", 1)
        rows[first.strip().strip("`")] = rest
    return rows


@dataclass(frozen=True)
class Block:
    """A code block of a page and how the tests treat it: a ```bash block's `dlkit` commands (each its arguments
    after `dlkit`), or a ```python block's code."""

    where: str  # page:line
    mark: str  # "run", "not run" or "plan"
    why: str  # a "not run" block's reason
    commands: tuple[tuple[str, ...], ...] = ()
    code: str = ""  # a ```python block's


def blocks(name: str) -> list[Block]:
    """The ```bash blocks of a page that hold at least one `dlkit` command (continued lines joined), and its
    ```python blocks."""
    lines = page(name).splitlines()
    found = []
    for number, line in enumerate(lines):
        if line.strip() not in ("```bash", "```python"):
            continue
        end = next(i for i in range(number + 1, len(lines)) if lines[i].strip() == "```")
        text = textwrap.dedent("\n".join(lines[number + 1 : end]))
        mark = MARK.match(lines[number - 1].strip()) if number else None
        kind = "plan" if mark is None else ("run" if mark.group(1) == "run" else "not run")
        where, why = f"{name}:{number + 1}", mark.group(2) if mark and mark.group(2) else ""
        if line.strip() == "```python":
            found.append(Block(where, kind, why, code=text))
            continue
        commands = tuple(
            tuple(shlex.split(command, comments=True)[1:])
            for command in text.replace("\\\n", " ").splitlines()
            if command.split(" ", 1)[0] == "dlkit"
        )
        if commands:
            found.append(Block(where, kind, why, commands))
    return found


TAKE_OVERRIDES = ("check", "report", "resume", "studies")  # subcommands whose arguments include config overrides
NOT_TRAINING = (*TAKE_OVERRIDES, "list", "ui", "--cfg", "--help", "--hydra-help")


def check(block: Block, folder: Path) -> None:
    """The block as its mark says: skipped with why, run in `folder`, or each command planned."""
    import pytest

    if block.mark == "not run":
        pytest.skip(f"marked not run: {block.why}")
    if block.code:
        assert block.mark == "run", f"{block.where}: a Python example is run, or marked not run with why"
        done = subprocess.run([sys.executable, "-c", block.code], cwd=REPO, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{block.where}:\n{done.stderr[-2000:]}"
    elif block.mark == "run":
        run(block, folder)
    else:
        for command in block.commands:
            plan(command)


def plan(command: tuple[str, ...]) -> None:
    """What `dlkit <command>` checks before anything runs, in this process: every job composed and planned (a
    ConfigError names what no longer holds). A subcommand other than `check` is only named: its flags are
    argparse's, tested by tests/test_cli.py."""
    from dlkit import cli

    args = list(command)
    if args[:1] == ["check"]:
        args = args[1:]
    elif args[:1] == ["--cfg"]:
        args = args[2:]
    elif args[:1] and args[0] in (*cli.SUBCOMMANDS, "--help", "--hydra-help"):
        return
    multirun = "-m" in args
    overrides = [a for a in args if a != "-m"]
    cli._plan_jobs([*overrides, "tracking.enabled=false"], multirun)  # a server need not be there to plan


def run(block: Block, folder: Path) -> None:
    """Each of the block's commands as a real `dlkit` process, in order, all in `folder`: training for 3 epochs,
    recorded only when a later command reads the store back (report, resume). A single run must end better than
    chance (an example that trains to chance is at chance from the first epochs)."""
    from conftest import dlkit_cli

    reads_store = any(command[:1] in (("report",), ("resume",)) for command in block.commands)
    for command in block.commands:
        assert command[:1] != ("ui",), f"{block.where}: a server runs until stopped: mark its block not run"
        training = not command or command[0] not in NOT_TRAINING
        extra = [f"paths.output_dir={folder}"] if training or command[0] in TAKE_OVERRIDES else []
        if training:
            extra += ["trainer.max_epochs=3", *([] if reads_store else ["tracking.enabled=false"])]
        done = dlkit_cli(*command, *extra, timeout=600)
        said = done.stdout + done.stderr
        assert done.returncode == 0, f"{block.where}: dlkit {' '.join(command)}\n{said[-2000:]}"
        if training and "-m" not in command:
            assert "no better than" not in said, f"{block.where}: dlkit {' '.join(command)}\n{said[-500:]}"


def errors(name: str) -> list[tuple[str, tuple[str, ...], str]]:
    """(page:line, the command, the error line it shows) for each `$ dlkit ...` line of a page's transcripts
    (``` blocks without a language) that a `dlkit...: error: ...` line follows."""
    lines = page(name).splitlines()
    return [
        (f"{name}:{number + 1}", tuple(shlex.split(line[len("$ dlkit") :])), lines[number + 1])
        for number, line in enumerate(lines[:-1])
        if line.startswith("$ dlkit") and re.match(r"dlkit( \w+)?: error: ", lines[number + 1])
    ]


# Each command through dlkit's own entry point, one after another in one interpreter (torch imported once): what it
# prints last on stderr.
LAST_ERRORS = """
import contextlib, io, json, sys
from dlkit import cli
said = []
for args in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            cli.main(args)
        except SystemExit:
            pass
    said.append((err.getvalue().strip().splitlines() or [""])[-1])
print(json.dumps(said))
"""


def last_errors(commands: list[tuple[str, ...]], folder: Path) -> list[str]:
    """The line each `dlkit <command>` ends its stderr with, run in `folder` with this project's plugins/."""
    (folder / "plugins").symlink_to(REPO / "plugins")
    done = subprocess.run(
        [sys.executable, "-c", LAST_ERRORS, json.dumps([list(c) for c in commands])],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
