"""Where runs are recorded: an MLflow store (by default a sqlite file under outputs/), or nowhere."""
