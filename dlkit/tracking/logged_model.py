"""A run's trained model as an MLflow 3 LoggedModel (PyTorch flavour): what `mlflow.pytorch.load_model`,
`mlflow.register_model` and the UI's Models tab work with.

The model is saved as a torch.export program ("pt2"): it loads with torch alone, no dlkit, and runs no pickled
code. A model torch.export cannot trace (a plugin's data-dependent Python) is pickled instead, and then needs
dlkit (and the plugin) installed where it is loaded. The pip requirements are given, not inferred, and the
input example is not served again to check it: each would cost seconds a model.
"""

from __future__ import annotations

import io
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("dlkit")

NAME = "model"  # models:/<model_id>, or runs:/<run_id>/model


class NotLoadable(Exception):
    """The model cannot be logged from here, for the reason given; the run is otherwise whole."""


def prepare() -> None:
    """What logging a model costs once per process, paid ahead: importing torch and mlflow.pytorch (without the
    Lightning it would import for nothing), torch.export's first trace (it imports TorchDynamo), and MLflow's check
    of the requirements against what is installed (its first call maps every installed package's files: 1.2 s
    here): about 4 s in all. The recorder runs this in a thread as soon as a command's config asks for a model, so
    that the cost falls while the training process imports, plans and trains, on the other core."""
    try:
        import_mlflow_pytorch_without_lightning()
        import torch
        from mlflow.utils.requirements_utils import warn_dependency_requirement_mismatches

        torch.export.export(torch.nn.Linear(2, 1), (torch.zeros(2, 2),), dynamic_shapes=[{0: torch.export.Dim.AUTO}])
        warn_dependency_requirement_mismatches([torch_requirement()])  # the call log_model makes; its map is kept
    except Exception:  # nothing is lost: log_model meets the same problem, and reports it
        pass


def torch_requirement() -> str:
    import torch

    return f"torch=={torch.__version__.split('+')[0]}"


def import_mlflow_pytorch_without_lightning() -> None:
    """Import mlflow.pytorch without the Lightning it imports for its autologging (about a second, for nothing
    here): in a process that has not imported Lightning (the recorder), the import is made to fail by Python's rule
    that a module whose sys.modules entry is None cannot be imported, and mlflow.pytorch goes on without it (an
    MLflow that stops doing so fails tests/test_internals.py by name). The entries are removed afterwards."""
    blocked = [name for name in ("pytorch_lightning", "lightning") if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None
    try:
        import mlflow.pytorch  # noqa: F401
    finally:
        for name in blocked:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


def log_model(
    client,
    run_id: str,
    experiment_id: str,
    model: bytes,
    example: Any,
    step: int,
    metrics: Mapping[str, float],
    dataset: Mapping[str, str],
) -> str:
    """Log the torch.save'd module `model` with `example` (a few inputs) as its input example, linked to the run:
    the run's params, its metrics at `step` (the epoch the weights are from), and `metrics` measured on `dataset`
    ({name, digest}). Returns the model's id."""
    from importlib.metadata import version

    import mlflow
    import torch
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus
    from mlflow.models import infer_signature

    import_mlflow_pytorch_without_lightning()
    try:
        module = torch.load(io.BytesIO(model), weights_only=False)  # pickled by dlkit's own training process
    except (ModuleNotFoundError, AttributeError) as exc:  # a class only the training process has
        raise NotLoadable(
            f"its classes cannot be imported outside the training process ({exc}): a plugin in a project's"
            " plugins/ folder? install it as a package (pip install -e) to have its models logged"
        ) from None
    with torch.no_grad():
        signature = infer_signature(example, module(torch.as_tensor(example)).numpy())
    mlflow.set_tracking_uri(client.tracking_uri)  # the flavour writes through the process's tracking URI
    params = client.get_run(run_id).data.params
    for form, requirements in (
        ("pt2", [torch_requirement()]),
        ("pickle", [torch_requirement(), f"dlkit=={version('dlkit')}"]),
    ):
        logged = client.create_logged_model(
            experiment_id, NAME, source_run_id=run_id, params=params, model_type="dlkit"
        )
        try:
            mlflow.pytorch.log_model(
                module,
                name=NAME,
                model_id=logged.model_id,
                signature=signature,
                input_example=example,
                pip_requirements=requirements,
                serialization_format=form,
                # pt2 only: the pickle form hands extra arguments on to torch.save (there, the check costs ~1 s)
                **({"validate_serving_input": False} if form == "pt2" else {}),
            )
            break
        except Exception as exc:
            client.delete_logged_model(logged.model_id)
            if form == "pickle":
                raise
            log.info("the model could not be exported (%s): logged pickled", str(exc).splitlines()[0][:200])
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step)])
    client.log_batch(run_id, metrics=_linked(client, run_id, logged.model_id, step, metrics, dataset))
    return logged.model_id


def _linked(client, run_id: str, model_id: str, step: int, metrics: Mapping[str, float], dataset: Mapping[str, str]):
    """The run's metrics at `step`, and the model's own on `dataset`, as metrics of the model (its page shows them)."""
    from mlflow.entities import Metric

    at_step = [
        point
        for key in client.get_run(run_id).data.metrics
        for point in client.get_metric_history(run_id, key)
        if point.step == step and point.model_id is None
    ]
    now = int(time.time() * 1000)
    return [
        *(Metric(p.key, p.value, p.timestamp, p.step, run_id=run_id, model_id=model_id) for p in at_step),
        *(
            Metric(
                k,
                float(v),
                now,
                step,
                run_id=run_id,
                model_id=model_id,
                dataset_name=dataset["name"],
                dataset_digest=dataset["digest"],
            )
            for k, v in metrics.items()
        ),
    ]
