"""Where runs are recorded: an MLflow store (by default a sqlite file under outputs/), or nowhere."""
from dlkit.tracking.run import NullRun, open_run  # noqa: F401
