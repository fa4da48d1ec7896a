"""Tasks: the LightningModules that train a model. Importing this package registers them all."""

from dlkit.tasks import classification, regression, seq2seq  # noqa: F401
