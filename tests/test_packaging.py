"""A wheel (not the source checkout) carries the configs and runs from any directory."""

import os
import subprocess
import sys
import zipfile

import pytest

from conftest import QUICK, REPO, dlkit_cli


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    root = tmp_path_factory.mktemp("wheel")
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(root), str(REPO)]
    subprocess.run(build, check=True, capture_output=True)
    (wheel,) = root.glob("dlkit-*.whl")
    site = root / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
    )
    return wheel, site


def test_wheel_carries_configs_and_the_hydra_plugin(installed):
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "dlkit/conf/config.yaml" in names and "dlkit/conf/model/lenet5.yaml" in names
    assert "hydra_plugins/dlkit_searchpath/dlkit_searchpath.py" in names
    assert "hydra_plugins/dlkit_sweeper/dlkit_sweeper.py" in names and "dlkit/conf/hydra/sweeper/dlkit.yaml" in names
    assert not any(n.startswith(("tests/", "plugins/")) for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "dlkit = dlkit.cli:command" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_installed_package_trains_from_another_directory(installed, tmp_path):
    _, site = installed
    env = {"PYTHONPATH": str(site)}
    where = dlkit_cli("--cfg", "job", cwd=tmp_path, env=env)
    probe = subprocess.run(
        [sys.executable, "-c", "import dlkit.config as c; print(c.CONF_DIR)"],
        cwd=tmp_path,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    assert probe.stdout.strip() == str(site / "dlkit" / "conf")
    assert where.returncode == 0 and "name: mlp" in where.stdout
    done = dlkit_cli("model=lenet5", *QUICK, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "outputs" / "mlflow.db").is_file()  # outputs/ is where the user stands
    swept = dlkit_cli("-m", "seed=0,1", *QUICK, cwd=tmp_path, env=env)  # through the installed sweeper plugin
    assert swept.returncode == 0 and "Sweep FINISHED" in swept.stdout, swept.stderr[-2000:]
