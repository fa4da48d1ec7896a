"""What a user sees of dlkit's records in MLflow's own UI: a real `mlflow server` over a small sweep's store, its
pages rendered by headless Chromium (Debian's chromium and chromium-driver; skipped when they are absent)."""

import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import all_runs, dlkit_cli, free_port
from test_server import stop_server, wait_until_healthy
from test_ui import listening_addresses

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="needs Chromium and ChromeDriver: apt-get install chromium chromium-driver"
)
HOST = "127.0.0.2"  # a loopback address of every Linux machine, not dlkit ui's default
WAIT_S = 60  # for a page to render: the first load of the UI's scripts is slow on a busy machine


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """A two-job sweep with its report and the screenshot of its view, served by `mlflow server`; a headless browser;
    the store's client."""
    from mlflow.tracking import MlflowClient
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    folder = tmp_path_factory.mktemp("ui")
    # A study's sweep (its claim and verdict go to the parent's description), on the digits, one seed: two runs
    study = ["+study=activation_quick", "study.control=tanh", "study.treatment=relu", "data=digits", "seed=0"]
    swept = dlkit_cli(
        "-m",
        "activation=relu,tanh",
        *study,
        "trainer.max_epochs=2",
        "data.limit=48",
        f"paths.output_dir={folder}",
        model=True,
    )
    assert swept.returncode == 0, swept.stderr[-3000:]
    reported = dlkit_cli("report", "--screenshot", f"paths.output_dir={folder}")
    assert reported.returncode == 0, reported.stderr[-3000:]
    assert "Screenshot of the view: " in reported.stdout and "as report/view.png" in reported.stdout
    port = free_port()
    # `dlkit ui` as a user starts it, on another loopback address than its default: --host is what it binds
    server = subprocess.Popen(
        [sys.executable, "-m", "dlkit", "ui", "--host", HOST, "--port", str(port), f"paths.output_dir={folder}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    wait_until_healthy(server, f"http://{HOST}:{port}")
    assert listening_addresses(port) == {"0200007F"}  # 127.0.0.2 only
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1600,1200")
    browser = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield browser, f"http://{HOST}:{port}", MlflowClient(f"sqlite:///{folder}/mlflow.db")
    finally:
        browser.quit()
        stop_server(server)


def sweep_runs(client):
    runs = all_runs(client)
    (parent,) = [r for r in runs if r.data.tags.get("dlkit.sweep") == "parent"]
    return parent, sorted((r for r in runs if r is not parent), key=lambda r: r.info.run_name)


def page_text(browser, url: str, shows: str, loading: str | None = None) -> str:
    """The rendered text of the page at url, once it shows `shows` (and no longer shows `loading`: a part of the page
    that the UI fetches after the rest)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def body(b) -> str:
        return b.find_element(By.TAG_NAME, "body").text

    browser.get(url)
    WebDriverWait(browser, WAIT_S).until(lambda b: shows in body(b) and (loading is None or loading not in body(b)))
    return body(browser)


def test_the_runs_table_shows_the_sweep_its_children_their_data_and_models(ui):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from dlkit.tracking.store import ui_link

    browser, base, client = ui
    parent, children = sweep_runs(client)
    text = page_text(browser, ui_link(base, parent.info.experiment_id), parent.info.run_name)
    assert "Model training" in text and "Evaluation runs" not in text  # the link opens the model-training view
    browser.find_element(By.CSS_SELECTOR, ".ag-row button").click()  # unfold the sweep's children
    WebDriverWait(browser, WAIT_S).until(lambda b: "activation=tanh" in b.find_element(By.TAG_NAME, "body").text)
    text = browser.find_element(By.TAG_NAME, "body").text
    assert [c.info.run_name for c in children] == ["activation=relu,seed=0", "activation=tanh,seed=0"]
    assert all(c.info.run_name in text for c in children)
    train = next(d.dataset for d in children[0].inputs.dataset_inputs if d.dataset.name == "digits/train")
    assert text.count(f"digits/train ({train.digest})") == 2  # each child's Dataset cell: the same data
    assert text.count("\nmodel\n") == 2  # each child's Models cell names its logged model


def test_a_childs_page_shows_its_datasets_and_logged_model(ui):
    from dlkit.tracking.store import ui_link

    browser, base, client = ui
    _, children = sweep_runs(client)
    child = children[0]
    digests = {d.dataset.name: d.dataset.digest for d in child.inputs.dataset_inputs}
    url = ui_link(base, child.info.experiment_id, child.info.run_id)
    text = page_text(browser, url, "Logged models", loading="Models loading")  # the models are fetched last
    logged = text.split("Logged models", 1)[1].split("About this run")[0]
    assert logged.startswith(" (1)") and "\nmodel\nReady\n" in logged  # one model, ready to load
    assert f"digits/test (#{digests['digits/test']})" in logged  # with its test metrics, on the test split
    datasets = text.split("\nDatasets\n", 1)[1]
    assert datasets.startswith(f"digits/train ({digests['digits/train']})\nTraining\n+2")  # and the other two splits


def test_the_parents_report_shows_its_figure(ui):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser, base, client = ui
    parent, _ = sweep_runs(client)
    url = f"{base}/#/experiments/{parent.info.experiment_id}/runs/{parent.info.run_id}/artifacts/report/report.html"
    browser.get(f"{url}?workflowType=machine_learning")
    frame = WebDriverWait(browser, WAIT_S).until(lambda b: b.find_element(By.CSS_SELECTOR, "iframe"))
    browser.switch_to.frame(frame)
    image = WebDriverWait(browser, WAIT_S).until(lambda b: b.find_element(By.TAG_NAME, "img"))
    WebDriverWait(browser, WAIT_S).until(lambda b: b.execute_script("return arguments[0].complete", image))
    assert browser.execute_script("return arguments[0].naturalWidth", image) > 100  # drawn, not a broken icon
    assert "activation" in browser.find_element(By.TAG_NAME, "body").text
    browser.switch_to.default_content()


def test_a_sweeps_saved_view_opens_grouped_by_its_factor_with_a_line_per_group(ui):
    """The view the sweep saved (dlkit/tracking/views.py), opened by its link: the children grouped by the factor,
    one group per level with its run count, and the objective's chart with a line per group."""
    from dlkit.tracking import views

    browser, base, client = ui
    parent, children = sweep_runs(client)
    experiment = client.get_experiment(parent.info.experiment_id)
    ((name, link),) = views.saved(experiment.experiment_id, experiment.tags, parent.info.run_id)
    assert name.endswith("by activation")
    text = page_text(browser, link.replace(views.UI, base), "tanh (val/loss)")  # served here, not on :5000
    assert "You're viewing a shared view" in text and "Group by: factor.activation" in text
    for level in ("relu", "tanh"):
        assert f"Group: {level}\n1" in text  # one group per level, one run in each
        assert f"{level} (val/loss)" in text  # the per-epoch chart: a line per group
    assert f"{len(children)} matching runs" in text  # the children only: the parent is not among them


def test_the_parents_page_shows_its_description_the_factors_the_means_and_the_verdict(ui):
    """The Markdown note the sweep wrote on its parent (mlflow.note.content), rendered: the factor and its levels, the
    table of the objective's means per level (each child's value here: one run per level), the view's link, and the
    study's claim and verdict that `dlkit report` added."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from dlkit.tracking.store import ui_link

    browser, base, client = ui
    parent, children = sweep_runs(client)
    page_text(browser, ui_link(base, parent.info.experiment_id, parent.info.run_id), "Show more")
    browser.find_element(By.XPATH, "//*[normalize-space(text())='Show more']").click()  # the whole description
    WebDriverWait(browser, WAIT_S).until(lambda b: "Show less" in b.find_element(By.TAG_NAME, "body").text)
    text = browser.find_element(By.TAG_NAME, "body").text
    description = text.split("\nDescription\n", 1)[1].split("Show less")[0]
    assert "Sweep of 2 runs; objective val/loss (lower is better)" in description
    assert "\nactivation: relu, tanh\n" in description  # the factor and its levels, "**activation**" in Markdown
    assert "\nactivation mean val/loss runs\n" in description  # the table's header row, as a table
    for child in children:
        level = child.data.tags["factor.activation"]
        assert f"\n{level} {child.data.metrics['val/loss']:.4g} 1\n" in description
    assert "study activation: by activation" in description  # the view's link
    verdict = description.split("The study's verdict", 1)[1]  # added by dlkit report: the claim and the verdict
    assert "cannot separate the spirals" in verdict and "activation=relu vs activation=tanh: smoke test" in verdict


def test_the_report_attaches_a_screenshot_of_the_sweeps_view(ui, tmp_path):
    """`dlkit report --screenshot` (in the fixture): report/view.png on the parent, the view as Chromium drew it."""
    from PIL import Image

    _, _, client = ui
    parent, _ = sweep_runs(client)
    assert "report/view.png" in {f.path for f in client.list_artifacts(parent.info.run_id, "report")}
    path = Path(client.download_artifacts(parent.info.run_id, "report/view.png", str(tmp_path)))
    png = path.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    assert struct.unpack(">II", png[16:24]) == (1600, 1000)  # the window's size
    colours = Image.open(path).convert("RGB").getcolors(1600 * 1000)
    assert len(colours) > 500  # text, lines and fills: a blank page has one colour
    # the charts' coloured lines and bars; a page whose charts are still loading has some 5,000 such pixels (its
    # buttons and the groups' dots), the drawn view some 60,000 or more
    vivid = sum(n for n, (r, g, b) in colours if max(r, g, b) - min(r, g, b) > 100)
    assert vivid > 30_000, vivid
