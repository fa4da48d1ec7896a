"""Both plugin routes, end to end: the project's plugins/ folder and an installed entry point."""

import base64
import hashlib
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from conftest import QUICK, all_runs, dlkit_cli

DEMO = {
    "dlkit_ep_demo/__init__.py": textwrap.dedent(
        '''
        """An installed dlkit plugin: a Softsign activation and a task that also logs its step count."""
        import torch
        from torch import nn

        from dlkit.registry import register
        from dlkit.tasks.classification import Classification


        @register("activation", "softsign")
        class Softsign(nn.Module):
            def forward(self, x):
                return x / (1 + x.abs())


        @register("task", "counting")
        class Counting(Classification):
            def __init__(self, **parts):
                super().__init__(**parts)
                self.steps = 0

            def training_step(self, batches, batch_idx):  # a list of batches, one optimizer step each
                self.steps += len(batches)
                return super().training_step(batches, batch_idx)

            def on_train_epoch_end(self):
                super().on_train_epoch_end()
                self.log("train/steps", float(self.steps))
        '''
    ),
    "dlkit_ep_demo/conf/activation/softsign.yaml": "name: softsign\n",
    "dlkit_ep_demo/conf/task/counting.yaml": "name: counting\n",
}


def build_wheel(folder: Path) -> Path:
    """A real wheel of a tiny distribution that declares a `dlkit.plugins` entry point."""
    info = "dlkit_ep_demo-0.3.0.dist-info"
    files = {
        **DEMO,
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: dlkit-ep-demo\nVersion: 0.3.0\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: dlkit-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/entry_points.txt": "[dlkit.plugins]\ndemo = dlkit_ep_demo\n",
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join(record + [f"{info}/RECORD,,"]) + "\n"
    wheel = folder / "dlkit_ep_demo-0.3.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return wheel


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The demo distribution pip-installed into a private folder, visible only through PYTHONPATH."""
    root = tmp_path_factory.mktemp("ep")
    target = root / "site"
    pip = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--no-deps",
        "--no-index",
        "--target",
        str(target),
        str(build_wheel(root)),
    ]
    subprocess.run(pip, check=True, capture_output=True)
    return target


def test_folder_plugin_option_works_from_the_command_line(outputs, store):
    done = dlkit_cli("activation=swish", "activation.beta=2.0", *QUICK, f"paths.output_dir={outputs}", model=True)
    assert done.returncode == 0, done.stderr
    (run,) = all_runs(store())
    assert run.data.params["activation.name"] == "swish" and run.data.params["activation.beta"] == "2.0"
    assert "swish (plugins/swish)" in run.data.tags["dlkit.plugins"]
    # Its model holds a class only this project's processes can import: the run finishes without a logged
    # model, and a tag says why
    assert run.info.status == "FINISHED" and "dlkit.model_id" not in run.data.tags
    assert "install it as a package (pip install -e)" in run.data.tags["dlkit.model_skipped"]


def test_swish_computes_x_times_sigmoid_beta_x():
    import torch

    import dlkit.plugins as plugins
    from dlkit.registry import registry

    plugins.reset()
    plugins.load_all()
    swish = registry("activation").build({"name": "swish", "beta": 2.0})
    x = torch.tensor([-1.0, 0.0, 1.5])
    assert torch.allclose(swish(x), x / (1 + torch.exp(-2.0 * x)))


def test_entry_point_plugin_adds_an_activation_and_a_task(site, outputs, store, tmp_path):
    env = {"PYTHONPATH": str(site)}
    listing = dlkit_cli("list", "task", cwd=tmp_path, env=env)
    rows = [line.split(None, 2) for line in listing.stdout.splitlines() if line.startswith("  ")]
    assert ["task=counting", "counting", "dlkit-ep-demo 0.3.0 (entry point)"] in rows  # its conf/ option
    done = dlkit_cli(
        "activation=softsign", "task=counting", *QUICK, f"paths.output_dir={outputs}", cwd=tmp_path, env=env
    )
    assert done.returncode == 0, done.stderr
    (run,) = all_runs(store())
    assert run.data.params["task.name"] == "counting" and run.data.params["activation.name"] == "softsign"
    steps = store().get_metric_history(run.info.run_id, "train/steps")
    assert [m.value for m in sorted(steps, key=lambda m: m.step)] == [4.0, 8.0]  # 96 samples / 32 per batch
    assert "demo (dlkit-ep-demo 0.3.0 (entry point))" in run.data.tags["dlkit.plugins"]


def test_plugins_can_be_switched_off(site, tmp_path):
    done = dlkit_cli(
        "activation=softsign",
        "tracking=none",
        *QUICK,
        cwd=tmp_path,
        env={"PYTHONPATH": str(site), "DLKIT_PLUGINS": "0"},
    )
    assert done.returncode == 2 and "activation 'softsign' is unknown" in done.stderr
    off = dlkit_cli("activation=swish", "tracking=none", *QUICK, env={"DLKIT_PLUGINS": "0"})
    assert off.returncode == 2 and "activation 'swish' is unknown" in off.stderr


def test_a_broken_plugin_is_named_and_does_not_break_other_runs(tmp_path):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "broken.py").write_text("import not_a_real_module_xyz\n")
    (tmp_path / "plugins" / "fine.py").write_text(
        "from torch import nn\nfrom dlkit.registry import register\nregister('activation', 'fine_tanh')(nn.Tanh)\n"
    )
    done = dlkit_cli("tracking=none", *QUICK, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "plugin 'broken' (plugins/broken.py) failed to import" in done.stderr + done.stdout
    assert "No module named 'not_a_real_module_xyz'" in done.stderr + done.stdout
    listing = dlkit_cli("list", "activation", cwd=tmp_path)
    rows = [line.split() for line in listing.stdout.splitlines() if line.startswith("  ")]
    assert ["activation=fine_tanh", "fine_tanh", "plugins/fine.py"] in rows  # no YAML: selected by its name
    assert "plugin 'broken' (plugins/broken.py) failed to import" in listing.stdout


def test_a_plugin_component_without_yaml_is_an_option_and_the_projects_conf_comes_first(tmp_path):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "softplus.py").write_text(
        "from torch import nn\nfrom dlkit.registry import register\n\n\n"
        "@register('activation', 'softplus')\ndef softplus(beta: float = 1.0) -> nn.Module:\n"
        "    return nn.Softplus(beta=beta)\n"
    )
    options = tmp_path / "conf" / "activation"
    options.mkdir(parents=True)
    (options / "leaky02.yaml").write_text("name: leaky_relu\nnegative_slope: 0.2\n")  # a new option
    (options / "relu.yaml").write_text("name: leaky_relu\nnegative_slope: 0.3\n")  # replaces dlkit's relu
    shown = dlkit_cli("--cfg", "job", "activation=softplus", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "activation:\n  name: softplus\n  beta: 1.0\n" in shown.stdout  # the signature's default
    mine = dlkit_cli("--cfg", "job", "activation=relu", cwd=tmp_path)
    assert "activation:\n  name: leaky_relu\n  negative_slope: 0.3\n" in mine.stdout
    done = dlkit_cli("-m", "activation=softplus,leaky02", *QUICK, f"paths.output_dir={tmp_path / 'o'}", cwd=tmp_path)
    assert done.returncode == 0 and "[job 2/2] test/acc" in done.stdout, done.stderr[-2000:]  # a sweep over both
    ran = dlkit_cli("activation=softplus", "activation.beta=2", *QUICK, "tracking=none", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr[-2000:]
    listing = dlkit_cli("list", "activation", cwd=tmp_path)
    rows = [line.split() for line in listing.stdout.splitlines() if line.startswith("  ")]
    assert ["activation=softplus", "softplus", "plugins/softplus.py"] in rows
    assert ["activation=leaky02", "leaky_relu", "dlkit"] in rows
