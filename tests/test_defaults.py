"""A component's defaults live twice: in its factory's signature and in its YAML option file. Users get the
YAML; code and tests that call the factory directly get the signature. These tests keep the two equal.

Rule: the canonical option of a registry entry is conf/<group>/<entry name>.yaml, or, where no file has that
stem, the single file of the group that names the entry (conf/residual/off.yaml for `none`). Every key of a
canonical option that the factory's signature declares with a default must equal that default, compared as
plain Python (lists and tuples element-wise, mappings by value). Other files naming the same entry are variants
chosen on purpose (conf/model/mlp_lenet_sized.yaml is a small `mlp`) and are not compared. Keys the signature
does not declare, or declares without a default, are not compared: plan.plan() consumes some itself (optimizer
batch_size, data resize) and Hydra reads `defaults`.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import pytest
import yaml

import dlkit.plan  # noqa: F401  (registers the built-ins)
from dlkit.config import CONF_DIR
from dlkit.registry import KINDS, registry

# Keys of an option file that are not its factory's parameters: read by plan.plan() or by Hydra.
NOT_PARAMETERS = {"optimizer": {"batch_size"}, "data": {"resize"}}
HYDRA_KEYS = {"defaults"}

# (file, key): why it may disagree. Each stays listed only while it still disagrees (see the test below).
EXEMPT = {
    # dlkit/data/ is owned elsewhere; 0.0833333 and 1/12 both give 5,000 validation images out of 60,000.
    ("data/mnist.yaml", "val_fraction"): "data set owned elsewhere: YAML 0.0833333, signature 1/12",
    ("data/fashion_mnist.yaml", "val_fraction"): "data set owned elsewhere: YAML 0.0833333, signature 1/12",
    # An interpolation resolved at compose time (outputs/data); the signature's None means no cache.
    ("data/mnist1d.yaml", "cache_dir"): "data set owned elsewhere: YAML ${paths.output_dir}/data, signature None",
}
# Fewer would mean files or keys stopped being read, not that everything agrees.
MIN_PAIRS = 90  # 105 today


def _options(group: str) -> dict[str, dict[str, Any]]:
    """conf/<group>/*.yaml as {file relative to conf/: the group's mapping}, `# @package _global_` unwrapped."""
    options = {}
    for path in sorted((CONF_DIR / group).glob("*.yaml")):
        text = path.read_text()
        doc = yaml.safe_load(text) or {}
        if any(line.strip().replace(" ", "") == "#@package_global_" for line in text.splitlines()):
            doc = doc.get(group, {})  # a global-package option puts its own group's keys under the group's name
        options[path.relative_to(CONF_DIR).as_posix()] = doc
    return options


def _canonical(group: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """{entry name: (its canonical option file, that file's mapping)} for one group, by the module's rule."""
    by_entry: dict[str, list[str]] = {}
    options = _options(group)
    for file, doc in options.items():
        assert isinstance(doc, Mapping) and "name" in doc, f"conf/{file} has no 'name' key"
        by_entry.setdefault(doc["name"], []).append(file)
    canonical = {}
    for name, files in by_entry.items():
        own = f"{group}/{name}.yaml"
        if own in files:
            canonical[name] = (own, options[own])
        else:
            assert len(files) == 1, f"{group} '{name}' is named by {files} and none is conf/{own}: add or rename one"
            canonical[name] = (files[0], options[files[0]])
    return canonical


def _plain(value: Any) -> Any:
    """Lists and tuples as lists, mappings as dicts, recursively: YAML and Python spell sequences differently."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _compare() -> tuple[list[tuple[str, str, Any, Any]], set[tuple[str, str]]]:
    """Every (file, key) of a canonical option with a signature default: (all compared, the set covered)."""
    pairs, covered = [], set()
    for kind in KINDS:
        entries = {e.name: e for e in registry(kind).entries()}
        for name, (file, doc) in _canonical(kind).items():
            assert name in entries, f"conf/{file} names {kind} '{name}', which is not registered"
            covered.add((kind, name))
            parameters = inspect.signature(entries[name].obj).parameters
            for key, value in doc.items():
                if key == "name" or key in HYDRA_KEYS or key in NOT_PARAMETERS.get(kind, ()):
                    continue
                if key in parameters and parameters[key].default is not inspect.Parameter.empty:
                    pairs.append((file, key, value, parameters[key].default))
    return pairs, covered


def test_canonical_options_agree_with_signature_defaults():
    """A disagreement means `dlkit` and a direct call build different things from the same 'default'."""
    pairs, _ = _compare()
    wrong = [(f, k, y, s) for f, k, y, s in pairs if _plain(y) != _plain(s)]
    unexpected = [
        f"conf/{f}: {k} is {y!r} in the YAML, {s!r} in the signature" for f, k, y, s in wrong if (f, k) not in EXEMPT
    ]
    assert not unexpected, "YAML and signature defaults disagree:\n" + "\n".join(unexpected)
    stale = set(EXEMPT) - {(f, k) for f, k, _, _ in wrong}
    assert not stale, f"exempt pairs that now agree (or are gone): drop them from EXEMPT: {sorted(stale)}"


def test_every_entry_with_a_same_named_option_is_covered():
    """An entry with its own conf/<group>/<name>.yaml must be compared, not skipped by a lookup that went wrong."""
    _, covered = _compare()
    expected = {
        (kind, e.name)
        for kind in KINDS
        for e in registry(kind).entries()
        if (CONF_DIR / kind / f"{e.name}.yaml").is_file()
    }
    assert expected, f"no registry entry has an option file under {CONF_DIR}"
    missed = sorted(expected - covered)
    assert not missed, f"entries with their own option file that were not compared: {missed}"


def test_the_comparison_is_not_vacuous():
    """The test above passes trivially if no pair is read: require the number of pairs seen today, roughly."""
    pairs, _ = _compare()
    assert len(pairs) >= MIN_PAIRS, f"only {len(pairs)} (file, key) pairs compared; expected at least {MIN_PAIRS}"
    groups = {"activation", "norm", "dropout", "loss", "optimizer", "scheduler", "data", "task", "model"}
    assert groups <= {f.split("/")[0] for f, *_ in pairs}, "a group with parameters contributed no pair"


@pytest.mark.parametrize("kind", KINDS)
def test_option_keys_are_parameters(kind):
    """A misspelt key ('hiden') would escape the comparison silently; every key must be something's parameter."""
    entries = {e.name: e for e in registry(kind).entries()}
    for file, doc in _options(kind).items():
        obj = entries[doc["name"]].obj
        parameters = inspect.signature(obj).parameters
        if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            continue
        extra = set(doc) - {"name"} - HYDRA_KEYS - NOT_PARAMETERS.get(kind, set()) - set(parameters)
        assert not extra, f"conf/{file}: {sorted(extra)} are not parameters of {kind} '{doc['name']}'"
