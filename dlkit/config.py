"""Where dlkit's configs live, how to compose them without the command line, and how to explain
composition errors in one line with a close match (Hydra's own advice for a misspelled key is to add
it with `+`, which is wrong)."""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from dlkit.errors import ConfigError, did_you_mean
from dlkit.internals import ComposeOnce
from dlkit.overrides import key as override_key
from dlkit.overrides import pairs as override_pairs

PACKAGE_DIR = Path(__file__).resolve().parent
# An installed wheel carries conf/ inside the package; a source checkout has it beside the package.
CONF_DIR = next(p for p in (PACKAGE_DIR / "conf", PACKAGE_DIR.parent / "conf") if (p / "config.yaml").is_file())
CONFIG_NAME = "config"

OmegaConf.register_new_resolver("dlkit.abspath", lambda path: str(Path(path).resolve()), replace=True)


def compose(overrides: Sequence[str] = (), with_hydra: bool = False) -> DictConfig:
    """The config that `dlkit <overrides>` would run, composed through Hydra's compose API (inside a running Hydra
    app, a search's worker, through the app's own search path)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    try:
        if GlobalHydra.instance().is_initialized():
            return hydra_compose(config_name=CONFIG_NAME, overrides=list(overrides), return_hydra_config=with_hydra)
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="dlkit"):
            return hydra_compose(config_name=CONFIG_NAME, overrides=list(overrides), return_hydra_config=with_hydra)
    except Exception as exc:  # explained outside the block: explaining composes again
        raise explain(exc, overrides) from None


def compose_jobs(overrides: Sequence[str], multirun: bool) -> list[tuple[list[str], DictConfig]]:
    """Every job's overrides and composed config (Hydra only: no torch is imported)."""
    jobs = job_overrides(overrides, multirun)
    composer = Composer()
    return [(job, _job_error(number, jobs, composer, job)) for number, job in enumerate(jobs)]


def plan_jobs(composed: list[tuple[list[str], DictConfig]]) -> list:
    """Each composed job's Plan; a mistake names its job."""
    from dlkit.plan import Plan  # imports torch and Lightning: not needed to compose or for --help

    jobs = [job for job, _ in composed]
    return [_job_error(number, jobs, Plan.from_config, cfg) for number, (_, cfg) in enumerate(composed)]


def _job_error(number: int, jobs: list[list[str]], function, *args):
    try:
        return function(*args)
    except ConfigError as exc:
        where = f"job {number + 1} of {len(jobs)} ({','.join(jobs[number])}): " if len(jobs) > 1 else ""
        raise ConfigError(where + str(exc)) from None


def parse(overrides: Sequence[str]) -> list:
    """Hydra's reading of the overrides (hydra.core's Override objects); a syntax error explained in one line."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        return OverridesParser.create(config_loader=_config_loader()).parse_overrides(list(overrides))
    except Exception as exc:
        raise explain(exc, overrides) from None


def _config_loader():
    """Hydra's config loader over dlkit's search path (a running Hydra app's own): what lists a group's options for a
    sweep by glob(...)."""
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        return GlobalHydra.instance().config_loader()
    return _own_config_loader()


@functools.cache
def _own_config_loader():
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="dlkit"):
        return GlobalHydra.instance().config_loader()


def job_overrides(overrides: Sequence[str], multirun: bool) -> list[list[str]]:
    """Each job's overrides, as Hydra's basic sweeper expands them (its own expansion: the cartesian product of the
    swept values, glob included). For a search (hydra/sweeper=optuna), the jobs that plan each searched value at its
    edges (dlkit.search.Space.check_jobs): the trials themselves are the search's to pick."""
    own = [o for o in overrides if not override_key(o).startswith("hydra")]
    if not multirun:
        return [own]
    parsed = parse(own)
    # The sweeper as configured (a preset, a study, may declare the sweep itself, in hydra.sweeper.params).
    sweeper = sweeper_config(unswept(overrides))
    params = sweeper.get("params") or {}
    if is_search(sweeper):
        from dlkit import search

        space = search_space(own, params)
        search.check(search.Settings.read(sweeper), space)
        return space.check_jobs()
    given = {override_key(p.get_key_element()) for p in parsed}
    parsed += parse([f"{k}={v}" for k, v in params.items() if k not in given])
    continuous = [p.input_line for p in parsed if p.is_sweep_override() and not p.is_discrete_sweep()]
    if continuous:
        raise ConfigError(
            f"{continuous[0]}: an interval has no list of values to sweep; search it with hydra/sweeper=optuna,"
            " or sweep a list (a,b,c) or range(start,stop,step)."
        )
    from dlkit.internals import basic_sweeper

    return [list(job) for batch in basic_sweeper().split_arguments(parsed, None) for job in batch]


def search_space(overrides: Sequence[str], params=None):
    """The search space (dlkit.search.Space) of a search's overrides and its sweeper's params."""
    from dlkit import search

    written = search.written(overrides, params)
    return search.space(written, parse(written))


def sweeper_config(overrides: Sequence[str]) -> DictConfig:
    """hydra.sweeper as these overrides (Hydra's own among them) compose it."""
    return _hydra_node(tuple(overrides)).sweeper


@functools.lru_cache(maxsize=8)
def _hydra_node(overrides: tuple[str, ...]) -> DictConfig:
    """The `hydra` node these overrides compose: once for a command's sweeper and its launcher (0.1 s a composition)."""
    return compose(overrides, with_hydra=True).hydra


def unswept(overrides: Sequence[str]) -> list[str]:
    """A multirun command's overrides without the swept ones: what composes its sweeper and launcher."""
    own = [o for o in overrides if not override_key(o).startswith("hydra")]
    fixed = [o for o, p in zip(own, parse(own)) if not p.is_sweep_override()]
    return [*fixed, *(o for o in overrides if override_key(o).startswith("hydra"))]


def jobs_elsewhere(overrides: Sequence[str]) -> bool:
    """Whether a multirun command's launcher runs its jobs in processes of their own (parallel, SLURM)."""
    launcher = _hydra_node(tuple(unswept(overrides))).launcher
    return not str(launcher.get("_target_", "")).endswith(".BasicLauncher")


def is_search(sweeper: DictConfig) -> bool:
    """Whether the sweeper is dlkit's search (hydra/sweeper=optuna): its trials are picked as it goes."""
    return str(sweeper.get("_target_", "")).endswith(".OptunaSweeper")


class Composer:
    """compose(overrides) for many jobs, composing once per choice of config group options (internals.ComposeOnce):
    the check of a sweep's jobs before launch, and a search's trials in its workers."""

    def __init__(self) -> None:
        self.once = ComposeOnce(compose, set(group_options()))

    def __call__(self, overrides: Sequence[str]) -> DictConfig:
        parsed = parse(overrides)
        try:
            return self.once(list(overrides), parsed)[0]
        except Exception as exc:
            raise explain(exc, overrides) from None


# What users of Hydra's optuna plugin write, and dlkit's search's form of it.
OLD_SEARCH_KEYS = {
    "hydra.sweeper.sampler.seed": "hydra.sweeper.seed=N",
    "hydra.sweeper.sampler._target_": "hydra.sweeper.sampler=tpe|random|grid|cmaes",
    "hydra.sweeper.n_jobs": "hydra/launcher=parallel hydra.launcher.n_jobs=N (N trials at once, one study)",
    "hydra.sweeper.max_failure_rate": "nothing: a failed trial never stops the search",
}


def explain(exc: Exception, overrides: Sequence[str]) -> ConfigError:
    """Turn a Hydra/OmegaConf composition error into a ConfigError that names a close match."""
    from hydra.errors import MissingConfigException, OverrideParseException

    if isinstance(exc, ConfigError):
        return exc
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file and "/" in exc.missing_cfg_file:
        group, _, option = exc.missing_cfg_file.rpartition("/")
        options = exc.options or []
        suggestion = did_you_mean(option, options)
        return ConfigError(
            f"{group} '{option}' is unknown;{suggestion} available: {', '.join(options)}."
            f" (options: YAML files in conf/{group}/ of this folder, of dlkit or of a plugin; or a plugin's component)"
        )
    if isinstance(exc, OverrideParseException):
        return ConfigError(f"cannot parse the override '{exc.override}': {exc.message.strip().splitlines()[0]}")
    message = str(exc).strip()
    found = re.search(r"Could not override '([^']+)'", message)
    if found:
        key = found.group(1)
        if key in OLD_SEARCH_KEYS:
            return ConfigError(f"'{key}' is Hydra's optuna plugin's; dlkit's search takes {OLD_SEARCH_KEYS[key]}.")
        rest = [o for o in overrides if override_key(o) != key]
        tree = OmegaConf.to_container(compose(rest, with_hydra=key.startswith("hydra.")), resolve=False)
        close = _close_key(key, tree)
        hint = f" did you mean '{close}'?" if close else f" top-level keys and groups: {', '.join(sorted(tree))}."
        return ConfigError(f"'{key}' is not a key of the config;{hint} (to add a new key on purpose, write +{key}=...)")
    first_line = message.splitlines()[0] if message else type(exc).__name__
    return ConfigError(first_line)


def _close_key(key: str, tree: dict) -> str | None:
    """Mend a dotted key one level at a time: 'optimzer.lrr' -> 'optimizer.lr'."""
    node, path = tree, []
    for part in key.split("."):
        if not isinstance(node, dict):
            return None
        if part not in node:
            close = difflib.get_close_matches(part, [str(k) for k in node], n=1, cutoff=0.6)
            if not close:
                return None
            part = close[0]
        path.append(part)
        node = node[part]
    mended = ".".join(path)
    return mended if mended != key else None


def project_conf() -> Path | None:
    """The conf/ folder of the project dlkit runs in (the current folder), when it is not dlkit's own: its
    options come first (hydra_plugins/dlkit_searchpath), so one of the same name replaces dlkit's."""
    folder = Path.cwd() / "conf"
    return folder if folder.is_dir() and folder.resolve() != CONF_DIR.resolve() else None


def _conf_folders() -> list[Path]:
    """The project's conf/, dlkit's, and each plugin's, in the order Hydra searches them."""
    from dlkit import plugins

    plugin_folders = [p.conf_dir for p in plugins.discover() if p.conf_dir is not None]
    return [folder for folder in (project_conf(), CONF_DIR, *plugin_folders) if folder is not None]


def needs_registered_options(overrides: Sequence[str]) -> bool:
    """Whether an override picks an option that no YAML file holds (group=name of a plugin's component): then the
    plugins are loaded before Hydra composes (otherwise later: importing them costs torch's import)."""
    options = group_options()
    return any(
        key in options and any(v.strip() not in options[key] for v in value.strip("[]").split(",") if v.strip())
        for key, value in override_pairs(overrides).items()
    )


def store_registered_options() -> int:
    """A registered component with no YAML option of its own (a plugin's `plugins/softplus.py`) is an option of its
    group all the same, `activation=softplus`, with its signature's defaults: a node in Hydra's ConfigStore.
    Returns how many there are."""
    import inspect

    from hydra.core.config_store import ConfigStore

    from dlkit.registry import GROUPS, KINDS, group, registry

    options, stored = group_options(), 0
    for kind in KINDS:
        for entry in registry(kind).entries():
            if entry.name in options.get(group(kind), []):
                continue
            defaults = {
                name: param.default
                for name, param in inspect.signature(entry.obj).parameters.items()
                if param.default is not inspect.Parameter.empty
                and isinstance(param.default, int | float | str | bool | type(None))
            }
            node = {"name": entry.name, **defaults}
            keyed = kind in GROUPS  # an option of callbacks holds its entries by name: callbacks.<name>.<parameter>
            ConfigStore.instance().store(group=group(kind), name=entry.name, node={entry.name: node} if keyed else node)
            stored += 1
    return stored


def option_component(group: str, option: str) -> str:
    """The registry name an option's YAML selects: its `name:`, or that of the option its defaults list extends; ''
    for an option that selects nothing (callbacks=none)."""
    import yaml

    for folder in _conf_folders():
        path = folder / group / f"{option}.yaml"
        if path.is_file():
            data = yaml.safe_load(path.read_text()) or {}
            if not data:
                return ""
            entries = [v for v in data.values() if isinstance(v, dict) and "name" in v]
            if "name" not in data and len(entries) == 1:  # an option of callbacks: {early_stopping: {name: ...}}
                data = entries[0]
            if "name" in data:
                return str(data["name"])
            extends = [d for d in data.get("defaults", []) if isinstance(d, str) and d != "_self_"]
            return option_component(group, extends[0]) if extends else option
    return option


def group_options() -> dict[str, list[str]]:
    """Every config group and its options: the YAML files of conf/ and of each plugin's conf/."""
    groups: dict[str, set[str]] = {}
    for folder in _conf_folders():
        for group in folder.iterdir():
            if group.is_dir() and group.name != "hydra":
                groups.setdefault(group.name, set()).update(f.stem for f in group.glob("*.yaml"))
    return {name: sorted(options) for name, options in sorted(groups.items())}


def help_text(overrides: Sequence[str]) -> str:
    """`dlkit --help`: the template in conf/config.yaml, filled in from the files (Hydra's own help composes
    the config again for every group, over a second here)."""
    cfg = compose(overrides, with_hydra=True)
    # A group the defaults list does not select (study) is added with Hydra's append syntax: +study=NAME.
    groups = "\n".join(
        f"{'' if name in cfg.hydra.runtime.choices else '+'}{name}: {', '.join(options)}"
        for name, options in group_options().items()
    )
    body = OmegaConf.to_yaml({k: v for k, v in cfg.items() if k != "hydra"})
    return str(cfg.hydra.help.template).replace("$APP_CONFIG_GROUPS", groups).replace("$CONFIG", body)
