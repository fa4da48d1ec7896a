"""A sweep's saved views in MLflow's UI, and the description of its parent run: plain values in, tags out.

MLflow's runs page keeps its grouping and charts in the browser, unless a saved view hands them over: an experiment tag
`mlflow.sharedViewState.<id>` whose value is {"name", "createdAt", "state"}, `state` being the page's search facets and
UI state as JSON (or "deflate;" + base64 of it zlib-compressed), at most 20,000 characters. The state's fields are those
of MLflow's ExperimentPageSearchFacetsState and ExperimentPageUIState (mlflow/server/js/src/experiment-tracking/
components/experiment-page/models), its charts those of runs-charts.types.ts (LINE, BAR, PARALLEL). A view's id
depends only on the sweep and what it shows, so a relaunched sweep replaces its views.
"""

from __future__ import annotations

import base64
import hashlib
import json
import statistics
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from dlkit.tracking import tags as tag

VIEW_TAG_PREFIX = "mlflow.sharedViewState."
NOTE = "mlflow.note.content"  # a run's description, rendered as Markdown on its page
MAX_TAG = 20_000  # characters of a view's tag value (MLflow's limit for experiment tags)
MAX_NOTE = 8_000  # characters of a run's tag value
PAGE = 100  # runs the UI loads at a time
UI = "http://127.0.0.1:5000"  # where `dlkit ui` serves the store by default
SECTION = "dlkit"  # the charts' section (its uuid)


@dataclass(frozen=True)
class Child:
    """What a view and the description need of one of the sweep's runs."""

    factors: Mapping[str, str]  # factor.<key> tags, without the prefix
    metrics: Mapping[str, float]
    params: Sequence[str] = ()  # the names of its params
    finished: bool = True


@dataclass(frozen=True)
class Sweep:
    experiment_id: str
    parent_id: str
    name: str  # the parent run's name
    factors: Sequence[str]  # as the parent's dlkit.factors lists them (seed included, if swept)
    objective: str
    maximize: bool
    search: bool  # a search's trials (hydra/sweeper=optuna), not levels of factors
    children: Sequence[Child]


@dataclass(frozen=True)
class View:
    view_id: str
    name: str
    value: str  # the tag's value
    notes: list[str] = field(default_factory=list)  # what had to be left out to fit the limit

    @property
    def key(self) -> str:
        return VIEW_TAG_PREFIX + self.view_id

    def link(self, sweep: Sweep) -> str:
        return link(sweep.experiment_id, self.view_id)


def link(experiment_id: str, view_id: str, base: str = UI) -> str:
    """The UI's page of an experiment's runs, opened on a saved view in chart mode (as MLflow's own share link)."""
    return (
        f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?viewStateShareKey={quote(view_id)}"
        "&compareRunsMode=CHART&workflowType=machine_learning"
    )


def factors(sweep: Sweep) -> list[str]:
    return [f for f in sweep.factors if f and f not in tag.REPLICATES]


def views(sweep: Sweep) -> list[View]:
    """One view per factor, one of the whole grid for two factors or more; a search's trials in one view."""
    keys = factors(sweep)
    if sweep.search:
        return [_view(sweep, "trials", f"{sweep.name}: trials by {sweep.objective}", (), _parallel(sweep, keys))]
    found = [_view(sweep, key, f"{sweep.name}: by {key}", (key,)) for key in keys]
    if len(keys) > 1:
        found.append(_view(sweep, "grid", f"{sweep.name}: grid of {' × '.join(keys)}", keys))
    return found


def _view(sweep: Sweep, what: str, name: str, group: Sequence[str], extra: Sequence[dict] = ()) -> View:
    """The view's tag value, within MAX_TAG: as JSON, else compressed, else without the test metrics' charts and
    columns (the objective's charts stay)."""
    view_id = hashlib.sha256(f"{sweep.parent_id}/{what}".encode()).hexdigest()[:20]
    tests = _tests(sweep)
    for kept, notes in ((tests, []), ([], [f"{len(tests)} test metrics left out of the views (MLflow's tag limit)"])):
        charts = [*extra, _line(sweep.objective), _bar(sweep.objective), *(_bar(m) for m in kept)]
        text = json.dumps(_state(sweep, group, charts, kept), separators=(",", ":"))
        for state in (text, "deflate;" + base64.b64encode(zlib.compress(text.encode(), 9)).decode()):
            value = json.dumps({"name": name, "createdAt": int(time.time() * 1000), "state": state})
            if len(value) <= MAX_TAG:
                return View(view_id, name, value, notes)
    return View(view_id, name, value, notes)  # the store will refuse it: a warning, the sweep stands


def saved(
    experiment_id: str, experiment_tags: Mapping[str, str], parent_id: str, base: str = UI
) -> list[tuple[str, str]]:
    """The names and links (to the UI at base) of the views a sweep saved, read back from its experiment's tags."""
    filter_ = f"tags.`{tag.PARENT}` = '{parent_id}'"
    found = {}
    for key, value in experiment_tags.items():
        if key.startswith(VIEW_TAG_PREFIX):
            try:
                found[key[len(VIEW_TAG_PREFIX) :]] = decode(value)
            except (ValueError, KeyError, TypeError, AttributeError, zlib.error):  # a view saved in another form
                continue
    return sorted(
        (view["name"], link(experiment_id, view_id, base))
        for view_id, view in found.items()
        if isinstance(view["state"], dict) and view["state"].get("searchFilter") == filter_
    )


def decode(value: str) -> dict:
    """A view's tag value with its state read back (as the UI reads it)."""
    view = json.loads(value)
    state = view["state"]
    if state.startswith("deflate;"):
        state = zlib.decompress(base64.b64decode(state[len("deflate;") :])).decode()
    return {**view, "state": json.loads(state)}


def _state(sweep: Sweep, group: Sequence[str], charts: Sequence[dict], tests: Sequence[str]) -> dict:
    keys = factors(sweep)
    return {
        # search facets (ExperimentPageSearchFacetsState): the sweep's runs, the best first
        "searchFilter": f"tags.`{tag.PARENT}` = '{sweep.parent_id}'",  # its children, not the parent itself
        "orderByKey": f"metrics.`{sweep.objective}`",
        "orderByAsc": not sweep.maximize,
        "startTime": "ALL",
        "lifecycleFilter": "Active",
        "datasetsFilter": [],
        "modelVersionFilter": "All Runs",
        # UI state (ExperimentPageUIState)
        "selectedColumns": [f"tags.`{tag.FACTOR_PREFIX}{k}`" for k in keys]
        + [f"metrics.`{m}`" for m in (sweep.objective, *tests)],
        "runsExpanded": {},
        "runsPinned": [],
        "runsHidden": [],
        "runsVisibilityMap": {},
        "runsHiddenMode": "SHOW_ALL",  # every group drawn, not only the first ten
        "compareRunCharts": list(charts),
        "compareRunSections": [
            {"uuid": SECTION, "name": sweep.name, "display": True, "isReordered": False, "deleted": False}
        ],
        "isAccordionReordered": True,  # the UI re-sorts unreordered sections assuming its own two come last
        "viewMaximized": False,
        "runListHidden": False,
        "groupBy": {
            "aggregateFunction": "average",
            "groupByKeys": [{"mode": "tag", "groupByData": tag.FACTOR_PREFIX + k} for k in group],
        }
        if group
        else None,
        "groupsExpanded": {},
        "useGroupedValuesInCharts": True,
        "hideEmptyCharts": True,
        "autoRefreshEnabled": False,
        "globalLineChartConfig": {"xAxisKey": "step", "lineSmoothness": 0, "selectedXAxisMetricKey": ""},
    }


def _card(kind: str, key: str, **fields) -> dict:
    return {
        "uuid": f"dlkit-{kind.lower()}-{key}",
        "type": kind,
        "runsCountToCompare": PAGE,
        "metricSectionId": SECTION,
        "deleted": False,
        "isGenerated": False,
        **fields,
    }


def _line(metric: str) -> dict:
    """The metric per epoch (its step): a line per run, or per group with a min-max band."""
    return _card(
        "LINE",
        metric,
        metricKey=metric,
        selectedMetricKeys=[metric],
        xAxisKey="step",
        scaleType="linear",
        xAxisScaleType="linear",
        lineSmoothness=0,
        useGlobalXaxisKey=False,
        useGlobalLineSmoothing=False,
    )


def _bar(metric: str) -> dict:
    """The metric's last value: a bar per run, or per group."""
    return _card("BAR", metric, metricKey=metric)


def _parallel(sweep: Sweep, keys: Sequence[str]) -> list[dict]:
    """A search's trials across its searched values (as params: a group's key is logged as <key>.name)."""
    names = {p for child in sweep.children for p in child.params}
    params = [next((p for p in (k, f"{k}.name") if p in names), k) for k in keys]
    return [_card("PARALLEL", "search", selectedParams=params, selectedMetrics=[sweep.objective], showAllRuns=True)]


def _tests(sweep: Sweep) -> list[str]:
    return sorted({m for child in sweep.children for m in child.metrics if m.startswith("test/")})


def note(sweep: Sweep, links: Sequence[tuple[str, str]], notes: Sequence[str] = ()) -> str:
    """The parent's description (Markdown): the factors and their levels, the mean objective per level, the views;
    the means left out when that would be longer than a run's tag holds."""
    keys = factors(sweep)
    better = "higher" if sweep.maximize else "lower"
    head = [
        f"**{'Search' if sweep.search else 'Sweep'}** of {len(sweep.children)} runs; objective "
        f"`{sweep.objective}` ({better} is better). Full report: `dlkit report`.",
        "",
    ]
    for key in keys:
        levels = sorted({c.factors[key] for c in sweep.children if key in c.factors})
        head.append(f"- **{key}**: {', '.join(levels)}")
    means = [] if sweep.search else [line for key in keys for line in ("", *_means(sweep, key))]
    tail = []
    if links:
        tail += ["", "Views in MLflow's UI (served by `dlkit ui`):", *(f"- [{name}]({url})" for name, url in links)]
    if len(sweep.children) > PAGE:
        tail += [
            "",
            f"The UI loads {PAGE} runs at a time: scroll the runs list to its end to group all {len(sweep.children)}.",
        ]
    tail += [f"- {n}" for n in notes]
    text = "\n".join([*head, *means, *tail])
    return text if len(text) <= MAX_NOTE else "\n".join([*head, *tail])[:MAX_NOTE]


def _means(sweep: Sweep, key: str) -> list[str]:
    rows = [f"| {key} | mean {sweep.objective} | runs |", "|---|---|---|"]
    for level in sorted({c.factors[key] for c in sweep.children if key in c.factors}):
        values = [
            c.metrics[sweep.objective]
            for c in sweep.children
            if c.finished and c.factors.get(key) == level and sweep.objective in c.metrics
        ]
        mean = f"{statistics.fmean(values):.4g}" if values else "–"
        rows.append(f"| {level} | {mean} | {len(values)} |")
    return rows
