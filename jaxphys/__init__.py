"""jaxphys: machine learning for physicists in JAX.

Submodules, one concept each: :mod:`~jaxphys.losses`, :mod:`~jaxphys.regularizers`,
:mod:`~jaxphys.activations`, :mod:`~jaxphys.models`, :mod:`~jaxphys.metrics`,
:mod:`~jaxphys.train`, :mod:`~jaxphys.mixed_precision`, :mod:`~jaxphys.callbacks`,
:mod:`~jaxphys.augment`, :mod:`~jaxphys.data`, :mod:`~jaxphys.physics` and
:mod:`~jaxphys.plots`. The most used names are re-exported
here; the last four submodules are imported on first use (``jaxphys.plots`` needs
matplotlib, ``pip install jaxphys[plots]``).

>>> import jax.numpy as jnp
>>> import jaxphys as jp
>>> round(float(jp.accuracy(jnp.array([0, 1, 1]), jnp.array([0.2, 0.9, 0.4]))), 4)
0.6667
>>> jp.physics.__name__, jp.augment.__name__
('jaxphys.physics', 'jaxphys.augment')
"""

import importlib as _importlib

from jaxphys import (activations, callbacks, checkpoint, losses, metrics, mixed_precision,
                     models, regularizers, train)
from jaxphys.losses import binary_cross_entropy, one_hot, softmax_cross_entropy
from jaxphys.metrics import (accuracy, confusion_matrix, discovery_significance, f1, fpr,
                             precision, recall, roc_auc, roc_curve, roc_points, tpr,
                             working_point)
from jaxphys.models import CNN, MLP, LogisticRegression, ResNet, SoftmaxRegression
from jaxphys.regularizers import elastic_net, l1, l2
from jaxphys.train import (TrainState, create_train_state, create_train_states, data_parallel_mesh,
                           evaluate, fit, make_eval_step, make_train_epoch, make_train_step,
                           predict)

__version__ = "0.1.0"

# Submodules imported on first attribute access: they need optional dependencies
# (matplotlib) or take time to import (numba), which `import jaxphys` should not pay.
_LAZY_SUBMODULES = ("augment", "data", "physics", "plots")


def __getattr__(name: str):
  if name in _LAZY_SUBMODULES:
    return _importlib.import_module(f"jaxphys.{name}")  # also binds it as an attribute
  raise AttributeError(f"module 'jaxphys' has no attribute {name!r}")


def __dir__() -> list:
  return sorted(set(globals()) | set(_LAZY_SUBMODULES))
