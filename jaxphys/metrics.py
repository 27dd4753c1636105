"""Classifier metrics, the same functions for binary (SUSY) and multi-class (MNIST).

Conventions, shared by every function (scikit-learn's, and tested against it):

* ``labels``: ``(n,)`` true classes, or ``(n, C)`` one-hot rows. Binary labels are
  0/1 (or bool) or -1/1 with 1 the positive class, or any two values with
  ``pos_label=``. Multi-class labels are integers in ``[0, C)``, the score columns.
* ``scores``: ``(n,)`` (or ``(n, 1)``) for a binary problem, the score of the positive
  class (a probability, or a logit with ``threshold=0.0``); ``(n, C)`` for ``C``
  classes, one column each. A binary prediction is ``scores >= threshold``; a
  multi-class one is the arg-max (``threshold`` is then unused).
* ``sample_weight``: ``(n,)`` per-example weights (weighted Monte Carlo events): every
  count becomes a sum of weights, as in scikit-learn.
* ``average`` (precision, recall/tpr, fpr, f1): ``"binary"`` (default) for the
  positive class; ``None`` per class; ``"macro"`` the mean over the classes present
  (in labels or predictions) or over ``classes=`` (scikit-learn's ``labels=``);
  ``"weighted"`` by class support; ``"micro"`` from pooled counts. A ratio whose
  denominator is zero is 0.0 (scikit-learn's default ``zero_division``).
* Eager calls (concrete arrays) check every input and raise a one-line ``ValueError``
  naming the argument: shapes, lengths, empty input, NaN/inf scores, label values, a
  missing class where a rate is undefined, targets outside [0, 1]. They compute on
  the host with NumPy in the input's own precision (float64 stays float64, int64
  exact; bfloat16 and other ``ml_dtypes`` floats as float32, exactly) and return NumPy
  values; thresholds keep the scores' dtype, so ``scores >= threshold`` reproduces every
  reported rate. A ``threshold=`` given as a JAX scalar is compared in the scores' own
  precision too.
* Under ``jax.jit`` (traced arrays) values cannot raise: only shapes are checked
  (``threshold`` must be a scalar), and the computation is ``jax.numpy`` in float32
  (weights are summed in at least float32; labels outside the classes are dropped).
  Without ``jax_enable_x64``, JAX itself converts int64/float64 arguments to 32 bits
  before the function sees them (int64 scores above 2**31 wrap): pass such data
  eagerly. :func:`roc_points` is the fixed-size ROC curve; :func:`roc_curve` is eager
  only (its length depends on the data).

Deliberate differences from scikit-learn: a missing class is an error where
scikit-learn warns and returns NaN (``roc_curve``, ``roc_auc``); binary labels other
than 0/1 or -1/1 need ``pos_label`` (``roc_auc_score`` takes the larger value as
positive); multi-class ``roc_auc`` accepts any scores, not only probabilities, and is
always one-vs-rest; ``average=None`` returns every class (``range(C)``), not only
those present; thresholds keep the scores' dtype (scikit-learn returns float64).
"""

from __future__ import annotations

from jaxphys._metrics_classification import (_class_labels, accuracy, confusion_matrix, f1, fpr,
                                             precision, predict_classes, recall, tpr)
from jaxphys._metrics_physics import Discovery, asimov_significance, discovery_significance
from jaxphys._metrics_ranking import WorkingPoint, roc_auc, roc_curve, roc_points, working_point

__all__ = [
    "predict_classes", "accuracy", "confusion_matrix", "tpr", "fpr", "precision",
    "recall", "f1", "roc_points", "roc_curve", "roc_auc", "WorkingPoint",
    "working_point", "asimov_significance", "Discovery", "discovery_significance",
]

# The public names live here (documentation, doctests, error messages), wherever defined.
for _name in __all__:
  globals()[_name].__module__ = __name__
del _name
