"""Property-based: whatever a user types for any key of the config, or for any subcommand's flag, dlkit plans it or
refuses it in one line (ConfigError, which the command prints as `dlkit: error: ...` with exit 2); never a traceback.
Planning only (no training): fast enough for every CI run, with a fixed seed and a bounded number of examples.

Longer, with new examples: DLKIT_PROPERTY_EXAMPLES=5000 pytest tests/test_properties.py -p no:randomly
(the seed stays fixed unless DLKIT_PROPERTY_SEED says otherwise)."""

from __future__ import annotations

import argparse
import os

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from dlkit import cli, config
from dlkit.errors import ConfigError

EXAMPLES = int(os.environ.get("DLKIT_PROPERTY_EXAMPLES", "60"))
SEED = int(os.environ.get("DLKIT_PROPERTY_SEED", "20261206"))
RUN = settings(
    max_examples=EXAMPLES, deadline=None, derandomize=False, suppress_health_check=list(HealthCheck), database=None
)


def leaf_keys() -> list[str]:
    """Every value's dotted key in the default config (not the groups' choices, drawn apart)."""
    tree = OmegaConf.to_container(config.compose())

    def walk(node, prefix):
        if isinstance(node, dict):
            for key, value in node.items():
                yield from walk(value, f"{prefix}{key}.")
        else:
            yield prefix[:-1]

    return sorted(walk(tree, ""))


KEYS = leaf_keys()
GROUPS = config.group_options()

NASTY = [
    "",
    "''",
    "null",
    "true",
    "nan",
    "inf",
    "-inf",
    "1e309",
    "-1",
    "0",
    "-0.0",
    "99999999999999999999999999",
    "${oops}",
    "${seed}",
    "${oc.env:NOPE}",
    "[]",
    "[1,-2]",
    "{}",
    "{a:1}",
    "é∞🙂",
    "x" * 5000,
    "'a,b'",
]
VALUES = st.one_of(
    st.sampled_from(NASTY),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=12),
)
VALUE_OVERRIDES = st.tuples(st.sampled_from(KEYS), VALUES).map(lambda kv: f"{kv[0]}={kv[1]}")
GROUP_OVERRIDES = st.tuples(
    st.sampled_from(sorted(GROUPS)), st.one_of(st.sampled_from(sorted({o for v in GROUPS.values() for o in v})), VALUES)
).map(lambda kv: f"{kv[0]}={kv[1]}")
OVERRIDES = st.lists(st.one_of(VALUE_OVERRIDES, GROUP_OVERRIDES), min_size=1, max_size=3)


def one_line(exc: ConfigError) -> None:
    text = str(exc).strip()
    assert text and "\n" not in text and "Traceback" not in text, text


@seed(SEED)
@RUN
@given(OVERRIDES)
def test_any_value_for_any_key_is_planned_or_refused_in_one_line(overrides):
    try:
        config.plan_jobs(config.compose_jobs(overrides, multirun=False))
    except ConfigError as exc:
        one_line(exc)


def flags(parser: argparse.ArgumentParser) -> st.SearchStrategy:
    """argv for a subcommand: its own options (and a few it does not have), each with a drawn value or none."""
    options = [o for action in parser._actions for o in action.option_strings if o not in ("-h", "--help")]
    option = st.sampled_from([*options, "--nope", "-x", "--"])
    pair = st.tuples(option, st.one_of(st.none(), VALUES)).map(lambda p: [p[0]] if p[1] is None else [p[0], p[1]])
    return st.lists(pair, max_size=3).map(lambda pairs: [a for p in pairs for a in p])


@pytest.mark.parametrize("name", sorted(cli.PARSERS))
def test_any_flags_of_a_subcommand_are_read_or_refused_in_one_line(name, capsys):
    parser = cli.PARSERS[name]()

    @seed(SEED)
    @RUN
    @given(flags(parser))
    def read_or_refuse(argv):
        try:
            parser.parse_args(argv)
        except SystemExit as exc:
            message = capsys.readouterr().err.strip()
            assert exc.code == 2 and message.startswith("dlkit: error: ") and "\n" not in message, message

    read_or_refuse()
