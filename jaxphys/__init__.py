"""jaxphys: machine learning for physicists in JAX.

Submodules, one concept each: :mod:`~jaxphys.losses`, :mod:`~jaxphys.regularizers`,
:mod:`~jaxphys.activations`, :mod:`~jaxphys.models`, :mod:`~jaxphys.metrics`,
:mod:`~jaxphys.train`. The most used names are re-exported here.
"""

from jaxphys import (activations, callbacks, checkpoint, losses, metrics, models,
                     regularizers, train)
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
