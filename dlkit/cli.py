"""The `dlkit` command: subcommands (`list`, `ui`), else a Hydra app around `train(cfg)`.

User errors (ConfigError, bad overrides) print one line and exit 2; DLKIT_DEBUG=1 shows the traceback.
"""

from __future__ import annotations

import argparse
import gc
import logging
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from dlkit import config, ddp, environment, folders
from dlkit import overrides as overrides_text
from dlkit.errors import (
    ConfigError,
    Diverged,
    Interrupted,
    RecorderError,
    RecorderGone,
    StoreLost,
    one_line,
    stop,
)

log = logging.getLogger("dlkit")


def command() -> None:
    """The `dlkit` program (and `python -m dlkit`)."""
    try:
        main()
    finally:
        # What is left is the interpreter's teardown, whose garbage collection would pass over every object torch
        # and Lightning made (about a second here); the memory goes back to the system anyway.
        gc.freeze()


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    handed = ddp.handed_config()
    if handed:
        return _ddp_process(handed)
    from dlkit.tracking.store import use_http_defaults

    use_http_defaults()
    try:
        if argv and argv[0] in SUBCOMMANDS:
            SUBCOMMANDS[argv[0]](argv[1:])
        else:
            _train_app(argv)
    except ConfigError as exc:
        _user_error(exc)
    except RecorderError as exc:  # the store refused a write, or the tracking server went away: said above
        if os.environ.get(environment.DEBUG):
            raise
        print(f"dlkit: {_recording_failed(exc)}", file=sys.stderr)
        sys.exit(1)
    except Interrupted as exc:
        if exc.run_id:
            print(f"dlkit: run {exc.run_id} is KILLED; continue it with: dlkit resume {exc.run_id}", file=sys.stderr)
        raise


def _recording_failed(exc: RecorderError) -> str:
    run_id = getattr(exc, "run_id", None)
    if isinstance(exc, RecorderGone) and run_id:
        return f"run {run_id} is KILLED: {exc}; continue it with: dlkit resume {run_id}"
    return str(exc)


def _ddp_process(config_file: str) -> None:
    """A DDP process Lightning started beside rank 0 by re-running the command line: it runs rank 0's job,
    not the command (which, for a sweep, would launch the whole sweep again)."""
    from omegaconf import OmegaConf

    from dlkit import plugins
    from dlkit.plan import Plan
    from dlkit.train import train

    plugins.load_all()
    train(Plan.from_config(OmegaConf.load(config_file)))


def _user_error(exc: ConfigError | Diverged) -> None:
    if os.environ.get(environment.DEBUG):
        raise exc
    if isinstance(exc, Diverged):  # not the user's typo, but their settings: one line, the FAILED run named
        print(f"dlkit: run {exc.run_id} FAILED: {exc}", file=sys.stderr)
        sys.exit(1)
    stop(str(exc))


def _train_app(argv: list[str]) -> None:
    import hydra
    from hydra.core.hydra_config import HydraConfig

    from dlkit.internals import hydra_args_parser

    args = hydra_args_parser().parse_args(argv)
    if args.help and not args.multirun and args.config_name is None and args.config_dir is None:
        return print(config.help_text(args.overrides))
    from dlkit import sweep

    if config.needs_registered_options(args.overrides):  # activation=softplus: a plugin's, with no YAML option
        from dlkit import plugins

        plugins.load_all()
        config.store_registered_options()
    only_prints = args.help or args.hydra_help or args.info or args.shell_completion or args.cfg
    if not only_prints and args.config_name is None and args.config_dir is None:
        plans = _plan_jobs(args.overrides, args.multirun)
        _planned.update({plan.fingerprint: plan for plan in plans})
        os.environ[environment.SWEEP_SIZE] = str(len(plans))  # an environment variable reaches parallel workers too

    @hydra.main(config_path=str(config.CONF_DIR), config_name=config.CONFIG_NAME, version_base="1.3")
    def job(cfg) -> float | None:
        from dlkit import plugins

        hydra_cfg = HydraConfig.get()
        multirun = hydra_cfg.mode.name == "MULTIRUN"
        plugins.load_all()  # in a parallel worker, its first job loads them
        if config.is_search(hydra_cfg.sweeper):
            return _search_worker(hydra_cfg, cfg)
        total = os.environ.get(environment.SWEEP_SIZE, "0")
        prefix = f"[job {hydra_cfg.job.num + 1}/{total if total != '0' else '?'}] " if multirun else ""
        overrides = list(hydra_cfg.overrides.task)
        return _run_job(lambda: _plan_of(cfg), overrides, prefix, multirun)

    # Hydra reads sys.argv; DDP re-runs it for the other processes, so the program keeps its real path.
    sys.argv = [sys.argv[0] if Path(sys.argv[0]).is_file() else "dlkit", *argv]
    interrupted = False
    try:
        job()
    except Interrupted:
        interrupted = True
        raise
    finally:
        sweep.close_abandoned(interrupted)
    if sweep.outcome is not None and sweep.outcome.status == "FAILED":
        sys.exit(1)


# Each job's plan, by fingerprint: a job is planned once, before any starts. Kept here, not in the job function that a
# parallel launcher pickles for its workers: a project plugin's classes in a plan cannot be unpickled there before the
# worker has loaded its plugins (a worker plans its jobs again, after loading them).
_planned: dict[str, object] = {}


# The nearest folder of each output folder that was there before this command: what it makes below them (Hydra, its
# run folders) a run refused before it started removes again.
_there: set[Path] = set()


def _discard_run_folder() -> None:
    """Hydra's run folder for a run refused inside its job (what only the data reveals, a model too large): it holds
    only Hydra's record of the config and the log of the refusal, which was printed. Removed, with the empty folders
    above it that were not there before the command."""
    import shutil

    from hydra.core.hydra_config import HydraConfig

    folder = Path(HydraConfig.get().runtime.output_dir)
    if not folder.is_dir() or any(p.name != ".hydra" and p.suffix != ".log" for p in folder.iterdir()):
        return
    shutil.rmtree(folder, ignore_errors=True)
    for above in folder.parents:
        if any(above.iterdir()) or not any(there in above.parents for there in _there):
            break  # not empty, or not made by this command
        above.rmdir()


def _plan_of(cfg):
    """The job's plan, if this process planned it; else its config, to plan."""
    from dlkit.plan import fingerprint

    return _planned.get(fingerprint(cfg)) or cfg


def _run_job(source, overrides: list[str], prefix: str, multirun: bool, callbacks=()) -> float:
    """Train one job of the command, a sweep's or a search's trial, and return its objective (what an optimizing
    sweeper minimizes or maximizes); nan when it failed. source() gives its Plan, or the config to plan. In a sweep
    a failure is one line and the other jobs go on; alone, it ends the command."""
    from dlkit import progress, sweep
    from dlkit.plan import Plan
    from dlkit.train import train

    this_sweep = sweep.current()
    plan = result = None
    try:
        given = source()
        plan = given if isinstance(given, Plan) else Plan.from_config(given)
        result = train(plan, overrides, sweep=this_sweep, progress_prefix=prefix, callbacks=callbacks)
    except (ConfigError, Diverged) as exc:  # here, or Hydra would print it as a crash
        if not multirun:
            if isinstance(exc, ConfigError):  # refused before any run: nothing of it is left behind
                _discard_run_folder()
            _user_error(exc)
        log.error("%sdlkit: error: %s", prefix, exc)  # in a sweep the other jobs go on
        if isinstance(exc, ConfigError) and this_sweep is not None:  # no run records it: the parent does
            this_sweep.job_failed_early(overrides, str(exc))
    except StoreLost as exc:  # it names the runs that stay RUNNING; no other job could record anything
        from dlkit import sweep

        sweep.store_lost()
        print(f"{prefix}dlkit: {exc}", file=sys.stderr)
        sys.exit(1)
    except RecorderGone as exc:  # its run ended KILLED from here; in a sweep the next job starts a new recorder
        if not multirun:
            print(f"dlkit: {_recording_failed(exc)}", file=sys.stderr)
            sys.exit(1)
        run_id = getattr(exc, "run_id", None)
        again = f"run {run_id} is KILLED: {exc}; launching the sweep again resumes it" if run_id else str(exc)
        log.error("%sdlkit: %s. The other jobs go on.", prefix, again)
        return math.nan
    except RecorderError as exc:  # the store refused a write: the run is FAILED with why, where it could be written
        why = one_line(str(exc).splitlines()[0])
        if not multirun:
            print(f"dlkit: {why}", file=sys.stderr)
            sys.exit(1)
        log.error("%sdlkit: %s; the other jobs go on", prefix, why)
        return math.nan
    except Exception:
        if not multirun:
            raise
        log.exception("%sthe job failed (its run is FAILED); the other jobs go on", prefix)
    if result is not None:
        _report(result, plan, prefix)
    if multirun:
        progress.job_ended(prefix.strip(" []"), overrides, result, plan.trainer.max_epochs if plan else None)
    return result.metrics.get(plan.objective, math.nan) if result is not None else math.nan


def _search_worker(hydra_cfg, cfg) -> int:
    """A worker of a search (hydra/sweeper=optuna): trials from the shared study until n_trials are done."""
    from omegaconf import OmegaConf

    from dlkit import search, sweep

    settings = search.Settings.read(OmegaConf.to_container(hydra_cfg.sweeper, resolve=True))
    study, space = search.join(settings, hydra_cfg.job.num, int(cfg.trainer.max_epochs), config.search_space)
    composer = config.Composer()

    def run_trial(overrides: list[str], callbacks: list, prefix: str) -> float:
        return _run_job(lambda: composer(overrides), overrides, prefix, True, callbacks)

    with sweep.worker_flushes():
        ran = search.work(study, settings, space, str(cfg.objective), run_trial, hydra_cfg.job.num)
    # Done: a worker in a process of its own is torn down next, and the garbage collection of its teardown (every
    # object torch and Lightning made) held the launcher's return up by seconds; the memory goes back anyway.
    gc.freeze()
    return ran


def _plan_jobs(overrides: Sequence[str], multirun: bool) -> list:
    """Every job of the command composed and planned, or nothing starts (and nothing is created).

    The recorder process starts first: MLflow's import happens on the other core while this process imports torch
    and Lightning for planning, then makes a new sqlite store aside (its migrations take 1-1.6 s). Once a sweep's
    jobs are all planned, the recorder puts the store in place and creates the experiment while Hydra sets the
    sweep up."""
    from dlkit import plugins
    from dlkit.tracking import recorder, store

    recording = _recording(overrides)
    if recording:
        recorder.start()
    composed = config.compose_jobs(overrides, multirun)
    uris = {str(cfg.tracking.uri) for _, cfg in composed if cfg.tracking.enabled}
    if recording:  # a new sqlite store's migrations, on the other core; put in place only once all is planned
        for uri in uris:
            recorder.make_store_ready(uri)
    if recording and any(cfg.tracking.enabled and cfg.tracking.get("log_model") for _, cfg in composed):
        recorder.prepare_model()  # a hint, before the values are checked: ~3 s of imports on the other core
    if multirun and composed and "study" in composed[0][1]:
        _check_study(composed)
    for uri in uris:
        store.check_reachable(uri)  # a server that is down fails here in seconds, before torch is imported
    plugins.load_all()  # once, here: a plugin's components are names the configs may use
    plans = config.plan_jobs(composed)
    for folder in dict.fromkeys(plan.output_dir for plan in plans):  # before Hydra makes its run folder there
        folders.check_writable(folder)
        path = Path(folder).absolute()
        _there.add(next(p for p in (path, *path.parents) if p.exists()))
    if multirun and plans and config.jobs_elsewhere(overrides):
        _make_data_once(plans)
    tracking = plans[0].tracking if plans else None
    if multirun and recording and tracking is not None and tracking.enabled and tracking.recorder:
        recorder.prepare(tracking.uri, tracking.experiment, tracking.artifact_root)
    return plans


def _make_data_once(plans) -> None:
    """Each data set of the jobs made once here, before jobs in processes of their own each make it at the same time:
    a download or a generated cache (MNIST-1D: 2.5 s of CPU) is then written by one process and read by the others."""
    made = []
    for plan in plans:
        if plan.data not in made:
            made.append(plan.data)
            plan.data()


def _check_study(composed) -> None:
    """A study preset's declaration, and that the sweep runs every cell it compares: before anything runs."""
    from omegaconf import OmegaConf

    from dlkit.verdict import Study

    study = Study.declared(OmegaConf.to_container(composed[0][1].study, resolve=True))
    study.check_sweep([overrides_text.pairs(job) for job, _ in composed])


def _recording(overrides: Sequence[str]) -> bool:
    """Whether the runs will write through a recorder process (unless the command line says otherwise)."""
    given = overrides_text.pairs(overrides)
    # A DDP process beside rank 0 that torchrun or srun started with the same command records nothing.
    beside_rank_zero = os.environ.get("RANK", "0") != "0" or os.environ.get("SLURM_PROCID", "0") != "0"
    return (
        not beside_rank_zero
        and given.get("tracking") != "none"
        and given.get("tracking.enabled") != "false"
        and given.get("tracking.recorder") != "false"
    )


def _report(result, plan, prefix: str) -> None:
    if result.rank:  # a DDP process beside rank 0, started by torchrun or srun: rank 0 reports
        return
    tests = "  ".join(f"{k} {v:.4f}" for k, v in sorted(result.metrics.items()) if k.startswith("test/"))
    log.info("%s%s", prefix, tests)
    if result.warning:  # finished, yet no better than ignoring the input: say so where the numbers are
        log.warning("%swarning: %s", prefix, result.warning)
    if not prefix and result.run_id:  # a sweep's jobs are summed up by the sweep at its end
        log.info("MLflow run %s (experiment '%s') in %s", result.run_id, plan.tracking.experiment, result.tracking_uri)
        from dlkit.tracking.store import ui_link

        log.info(
            "Browse it: dlkit ui   then open %s", ui_link("http://127.0.0.1:5000", result.experiment_id, result.run_id)
        )


def _store_config(overrides: list[str]):
    """The config that names the MLflow store a command reads (ui, report)."""
    cfg = config.compose(overrides)
    if not cfg.tracking.enabled:
        raise ConfigError("tracking is off (tracking=none): there is no MLflow store to read.")
    from dlkit.tracking import store

    store.check_reachable(cfg.tracking.uri)
    return cfg


class Parser(argparse.ArgumentParser):
    """A subcommand's flags: a mistake in them is one line, `dlkit: error: ...`, and exit 2 (not usage + error)."""

    def error(self, message: str) -> NoReturn:
        stop(f"{self.prog}: {message}; see {self.prog} --help")


def whole_number(low: int, high: int | None = None, why: str = ""):
    """An argparse type: a whole number from low to high (none above when None); why: what the bounds are for."""

    def parse(text: str) -> int:
        try:
            number = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
        if number < low or (high is not None and number > high):
            bounds = f"{low} to {high}" if high is not None else f"{low} or more"
            raise argparse.ArgumentTypeError(f"{number} is out of range: give {bounds}" + (f" ({why})" if why else ""))
        return number

    return parse


def _list_parser() -> Parser:
    parser = Parser(
        prog="dlkit list",
        description="What each config group offers on the command line (group=option), the component each option"
        " selects and where it comes from; registered components without an option of their own are listed too.",
    )
    parser.add_argument("kind", nargs="?", help="one of: " + ", ".join(_kinds()))
    return parser


def list_command(argv: list[str]) -> None:
    args = _list_parser().parse_args(argv)
    from dlkit import plan, plugins  # noqa: F401  (importing plan registers the built-ins)
    from dlkit.registry import group, registry

    plugins.load_all()
    kinds = [registry(args.kind).kind] if args.kind else _kinds()
    options = config.group_options()
    for kind in kinds:
        rows = []
        entries = {entry.name: entry for entry in registry(kind).entries()}
        for option in options.get(group(kind), []):
            name = config.option_component(group(kind), option)
            source = entries[name].source if name in entries else "?" if name else ""
            rows.append((f"{group(kind)}={option}", name or "(nothing)", source))
        selected = {name for _, name, _ in rows}
        rows += [(f"{group(kind)}={e.name}", e.name, e.source) for e in entries.values() if e.name not in selected]
        width = max(len(r[0]) for r in rows) + 2 if rows else 0
        named = max(len(r[1]) for r in rows) + 2 if rows else 0
        print(f"{kind}:")
        for option, name, source in rows:
            print(f"  {option:<{width}}{name:<{named}}{source}")
    failed = [p for p in plugins.discover() if p.error]
    for plugin in failed:
        print(f"plugin '{plugin.name}' ({plugin.origin}) failed to import: {plugin.error}")


def _kinds() -> list[str]:
    from dlkit.registry import KINDS

    return list(KINDS)


def _ui_parser() -> Parser:
    parser = Parser(prog="dlkit ui", description="Start the MLflow UI on dlkit's tracking store.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=whole_number(1, 65535), default=5000, help="port to listen on (default 5000)")
    parser.add_argument(
        "--workers",
        type=whole_number(1),
        default=1,
        help="server processes (default 1: one person's browser needs no more; MLflow's own default is 4)",
    )
    parser.add_argument(
        "--allowed-hosts",
        default="",
        help="more names the browser may reach it by (comma-separated; MLflow refuses other Host headers). "
        "With --host, that address and this machine's name and addresses are allowed already",
    )
    parser.add_argument(
        "overrides", nargs="*", help="config overrides that pick the store, e.g. paths.output_dir=elsewhere"
    )
    return parser


def ui_command(argv: list[str]) -> None:
    args = _ui_parser().parse_args(argv)
    tracking = _store_config(args.overrides).tracking
    from dlkit.tracking import store

    print(f"MLflow UI for {tracking.uri}  (Ctrl-C stops it)")
    for experiment in store.client(tracking.uri).search_experiments():
        # Link to the runs table: MLflow 3 opens an experiment on a GenAI page that shows no training runs.
        print(f"  {experiment.name}: {store.ui_link(f'http://{args.host}:{args.port}', experiment.experiment_id)}")
    sys.stdout.flush()
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        tracking.uri,
        "--host",
        args.host,
        "--port",
        str(args.port),
        "--workers",
        str(args.workers),
    ]
    names = allowed_names(args.host, args.allowed_hosts)
    if names:  # the UI's requests carry these as Host and Origin: MLflow refuses the ones it does not know
        # any port; MLflow matches with fnmatch, where "[" opens a set: "[[]" is a literal "["
        command += ["--allowed-hosts", ",".join(f"{n},{n.replace('[', '[[]', 1)}:*" for n in names)]
        command += ["--cors-allowed-origins", ",".join(f"http://{n}:{args.port}" for n in names)]
    os.execv(sys.executable, command)


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def allowed_names(host: str, extra: str) -> list[str]:
    """The names the browser may reach the UI by ([] for MLflow's default: localhost). Bound to another address
    than the loopback, MLflow must also accept that address, and this machine's name and addresses (0.0.0.0: any
    interface), or it answers the UI's every request 403; and then its default must be given too."""
    if host in LOOPBACK and not extra:
        return []
    import socket

    names = ["localhost", "127.0.0.1", "[::1]", *extra.split(",")]
    if host not in LOOPBACK:
        names.append(host if ":" not in host else f"[{host}]")
        if host in ("0.0.0.0", "::"):
            name = socket.gethostname()
            names += [name, socket.getfqdn()]
            try:
                names += socket.gethostbyname_ex(name)[2]
            except OSError:  # a name that does not resolve here: its addresses are unknown
                pass
    return [n.strip() for n in dict.fromkeys(names) if n.strip() and n not in ("0.0.0.0", "[::]")]


def check_command(argv: list[str]) -> None:
    if argv and argv[0] in ("-h", "--help"):
        print(
            "usage: dlkit check [overrides...]\n\nBuild the configured model without training: each layer's output "
            "shape and"
            " parameters, one forward and backward pass on a real batch, numerical gradient checks of plugin "
            "components."
        )
        return
    from dlkit import plugins  # after --help: these import torch and Lightning (seconds)
    from dlkit.check import check
    from dlkit.plan import Plan

    plugins.load_all()
    print(check(Plan.from_config(config.compose(argv))))


def _report_parser() -> Parser:
    parser = Parser(
        prog="dlkit report", description="The ablation report of a sweep (default: the latest), from MLflow."
    )
    parser.add_argument("--sweep", help="the parent run id of a sweep")
    parser.add_argument("--experiment", help="report on every run of an experiment instead")
    parser.add_argument("--metric", help="the deciding metric (default: the study's, else test/acc)")
    parser.add_argument(
        "--out", help="folder for report.md, report.csv and the plots (default: outputs/reports/<sweep>)"
    )
    parser.add_argument(
        "--screenshot",
        action="store_true",
        help="also attach a picture of the sweep's first saved view in MLflow's UI (report/view.png); needs Chromium",
    )
    parser.add_argument(
        "overrides", nargs="*", help="config overrides that pick the store, e.g. paths.output_dir=elsewhere"
    )
    return parser


def report_command(argv: list[str]) -> None:
    from dlkit import report

    args = _report_parser().parse_args(argv)
    chromium = None
    if args.screenshot:
        from dlkit.tracking import screenshot

        chromium = screenshot.browser()  # before the store is read: without a browser nothing changes
    cfg = _store_config(args.overrides)
    built = report.load(cfg.tracking.uri, args.sweep, args.experiment, args.metric)
    if chromium and built.parent_run_id is None:
        raise ConfigError("--screenshot shows a sweep's saved view: leave out --experiment, or name a --sweep.")
    folder = Path(args.out or Path(cfg.paths.output_dir) / "reports" / (built.parent_run_id or args.experiment))
    files = report.write(built, folder)
    report.attach(built, files)
    report.print_tables(built)
    print(
        f"Written: {', '.join(str(f) for f in files)}"
        + (f"; attached to run {built.parent_run_id}" if built.parent_run_id else "")
    )
    if chromium:
        try:
            shot = screenshot.attach(cfg.tracking.uri, built.parent_run_id, folder / "view.png", chromium)
        except screenshot.ScreenshotFailed as exc:  # the report stands, attached: only the picture is missing
            print(f"dlkit: no screenshot: {exc}", file=sys.stderr)
            sys.exit(1)
        print(f"Screenshot of the view: {shot}; attached to run {built.parent_run_id} as report/{shot.name}")


def _resume_parser() -> Parser:
    parser = Parser(
        prog="dlkit resume",
        description="Continue an interrupted run from its last checkpoint, in the same MLflow run, with the config it"
        " was started with. (A whole sweep resumes by launching the same command again.)",
    )
    parser.add_argument("run_id", help="the run's id, as printed when it was interrupted or shown by `dlkit ui`")
    parser.add_argument(
        "overrides", nargs="*", help="config overrides that pick the store, e.g. paths.output_dir=elsewhere"
    )
    return parser


def resume_command(argv: list[str]) -> None:
    import tempfile

    import yaml
    from omegaconf import OmegaConf

    parser = _resume_parser()
    if all(a.startswith("-") for a in argv) and not {"-h", "--help"} & set(argv):  # argparse: "overrides required"
        parser.error("which run? give its id: dlkit resume RUN_ID (printed when it was interrupted; dlkit ui shows it)")
    args = parser.parse_args(argv)
    uri = _store_config(args.overrides).tracking.uri
    from mlflow.exceptions import MlflowException

    from dlkit.tracking import store, tags

    client = store.client(uri)
    try:
        run = client.get_run(args.run_id)
    except MlflowException:
        raise ConfigError(
            f"no run '{args.run_id}' in {uri}; the run ids are in `dlkit ui` (or pass the overrides that pick its "
            "store)."
        ) from None
    if run.info.status == "FINISHED":
        raise ConfigError(f"run {args.run_id} has FINISHED: there is nothing to resume.")
    if run.data.tags.get(tags.SWEEP) == tags.SWEEP_PARENT:
        raise ConfigError(f"run {args.run_id} is a sweep's parent: launch the same sweep command again to resume it.")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            cfg = OmegaConf.load(client.download_artifacts(args.run_id, "config.yaml", tmp))
            overrides = (
                yaml.safe_load(Path(client.download_artifacts(args.run_id, "overrides.yaml", tmp)).read_text()) or []
            )
        except MlflowException:
            raise ConfigError(
                f"run {args.run_id} has no config.yaml: it was cut off before its config was recorded; start it"
                " again with its command (or launch its sweep again)."
            ) from None
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)  # as a run prints
    from dlkit import plugins
    from dlkit.plan import Plan
    from dlkit.train import train

    plugins.load_all()
    plan = Plan.from_config(cfg)
    _report(train(plan, overrides, resume=args.run_id), plan, "")


def _studies_parser() -> Parser:
    from dlkit import studies

    parser = Parser(prog="dlkit studies", description="Run the chapter's studies and write one document of verdicts.")
    parser.add_argument("--full", action="store_true", help="the full variants (default: the quick ones)")
    parser.add_argument(
        "--seeds",
        type=whole_number(2, why="a verdict needs 2 seeds per level, 5 or more to decide"),
        metavar="N",
        help="seeds 0..N-1 per level (default: the preset's)",
    )
    parser.add_argument("--only", metavar="A,B", help=f"a comma-separated choice of: {', '.join(studies.names())}")
    parser.add_argument("overrides", nargs="*", help="overrides for every study, e.g. paths.output_dir=elsewhere")
    return parser


def studies_command(argv: list[str]) -> None:
    from dlkit import studies

    args = _studies_parser().parse_args(argv)
    chosen = args.only.split(",") if args.only else studies.names()
    for name in chosen:
        if name not in studies.names():
            from dlkit.errors import unknown

            raise unknown("study", name, studies.names())
    document = studies.run_all(chosen, args.full, args.overrides, args.seeds)
    print(f"Written: {document}")


SUBCOMMANDS = {
    "list": list_command,
    "ui": ui_command,
    "check": check_command,
    "report": report_command,
    "studies": studies_command,
    "resume": resume_command,
}
# Each subcommand's flags, read before it does anything (tests/test_properties.py draws them).
PARSERS = {
    "list": _list_parser,
    "ui": _ui_parser,
    "report": _report_parser,
    "studies": _studies_parser,
    "resume": _resume_parser,
}
