"""Where runs are recorded: an MLflow store (by default a sqlite file under outputs/), or nowhere."""
from dlkit.tracking.run import NullRun, TrackedRun, open_run  # noqa: F401
