"""The public API, pinned: the top-level names and every public module's ``__all__``.

A change here is an API change: update this file on purpose, with the README and docs.
"""

import importlib
import inspect

import pytest

import jaxphys

TOP_LEVEL = {
    # modules
    "activations", "callbacks", "checkpoint", "errors", "losses", "metrics", "mixed_precision", "models",
    "regularizers", "train",
    # losses, regularizers
    "binary_cross_entropy", "softmax_cross_entropy", "one_hot", "l1", "l2", "elastic_net",
    # metrics
    "accuracy", "confusion_matrix", "discovery_significance", "f1", "fpr", "precision", "recall",
    "roc_auc", "roc_curve", "roc_points", "tpr", "working_point",
    # models
    "LogisticRegression", "SoftmaxRegression", "MLP", "CNN", "ResNet",
    # training
    "TrainState", "create_train_state", "create_train_states", "make_train_step", "make_eval_step",
    "make_train_epoch", "predict", "fit", "evaluate", "data_parallel_mesh",
}

MODULES = {
    "jaxphys.train": ["TrainState", "create_train_state", "create_train_states", "classification_metrics",
                      "make_train_step", "make_eval_step", "predict", "make_train_epoch", "TrainEpoch",
                      "fit", "evaluate", "data_parallel_mesh"],
    "jaxphys.callbacks": ["Callback", "Loop", "EarlyStopping", "CSVLogger", "TensorBoard", "ProgressBar",
                          "Checkpointer"],
    "jaxphys.models": ["LogisticRegression", "SoftmaxRegression", "MLP", "CNN", "ResNet", "ResidualBlock"],
    "jaxphys.checkpoint": ["Checkpointer", "config_differences", "save_params", "load_params",
                           "save_model", "load_model", "Predictor"],
    "jaxphys.errors": ["JaxphysError", "DataError", "ConfigMismatch", "OutputError", "RunLocked",
                       "TrainingDiverged"],
    "jaxphys.runs": ["RunDirectory", "published_results"],
    "jaxphys.losses": ["binary_cross_entropy", "softmax_cross_entropy", "one_hot"],
    "jaxphys.mixed_precision": ["PRECISIONS", "Policy", "get_policy", "default_precision", "has_wide_products",
                                "cast_floating", "apply_in_precision"],
    "jaxphys.regularizers": ["weights_mask", "l1", "l2", "elastic_net"],
    "jaxphys.metrics": ["predict_classes", "accuracy", "confusion_matrix", "tpr", "fpr", "precision",
                        "recall", "f1", "roc_points", "roc_curve", "roc_auc", "WorkingPoint",
                        "working_point", "asimov_significance", "Discovery", "discovery_significance"],
}

MODULE_NAMES = {"activations", "callbacks", "checkpoint", "errors", "losses", "metrics", "mixed_precision",
                "models", "regularizers", "train"}

# Trainer internals that once were public and must not come back.
REMOVED = {"compiler_options", "xla_options", "layers", "pool2d", "keep_mask", "Dropout"}


def test_top_level_names_are_pinned():
  public = {n for n in dir(jaxphys) if not n.startswith("_")}
  names = {n for n in public if not inspect.ismodule(getattr(jaxphys, n))}
  expected = {n for n in TOP_LEVEL if n not in MODULE_NAMES}
  assert names == expected, (sorted(names - expected), sorted(expected - names))
  # Submodules: these at least (importing another one, e.g. jaxphys.data, adds it).
  assert all(inspect.ismodule(getattr(jaxphys, m)) for m in MODULE_NAMES)
  assert not REMOVED & public


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_all_is_pinned_and_resolves(name):
  module = importlib.import_module(name)
  assert list(module.__all__) == MODULES[name]
  for attr in module.__all__:
    assert getattr(module, attr) is not None


def test_fit_has_no_backend_knobs():
  params = set(inspect.signature(jaxphys.fit).parameters)
  assert not params & {"loop", "xla_options", "compiler_options", "progress", "callback", "checkpointer", "resume"}
  assert {"callbacks", "sample_weight", "class_weight", "eval_data", "mesh", "shared_order"} <= params
  assert set(inspect.signature(jaxphys.evaluate).parameters) >= {"sample_weight", "mesh", "batch_size"}


@pytest.mark.parametrize("name", ["jaxphys.train", "jaxphys.callbacks", "jaxphys.models", "jaxphys.checkpoint",
                                  "jaxphys.runs", "jaxphys.metrics", "jaxphys.losses", "jaxphys.mixed_precision"])
def test_public_functions_have_return_annotations(name):
  module = importlib.import_module(name)
  for attr in module.__all__:
    obj = getattr(module, attr)
    if inspect.isfunction(obj):
      assert inspect.signature(obj).return_annotation is not inspect.Signature.empty, f"{name}.{attr}"
