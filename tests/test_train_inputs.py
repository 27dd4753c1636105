"""fit and evaluate check labels against the model's output before compiling."""

import jax
import numpy as np
import optax
import pytest

import jaxphys as jp

_RNG = np.random.default_rng(0)
_X = _RNG.normal(size=(40, 3)).astype(np.float32)
_INT = np.arange(40) % 3
_BIN = np.arange(40) % 2


def _fit(model, loss, y, x=_X, **kw):
  tx = optax.sgd(0.1)
  state = jp.create_train_state(jax.random.key(0), model, tx, x)
  step = jp.make_train_step(model.apply, loss, tx)
  ev = jp.make_eval_step(model.apply, loss)
  kw.setdefault("eval_step", ev)
  return jp.fit(state, step, x, y, key=jax.random.key(1), epochs=1, batch_size=8, **kw)


_MULTI, _BINARY = (jp.MLP((4, 3)), jp.softmax_cross_entropy), (jp.LogisticRegression(), jp.binary_cross_entropy)

CASES = [
    # (model and loss, labels, message)
    (_BINARY, _BIN[:, None], r"labels have shape \(40, 1\) but the model gives one logit"),
    (_MULTI, _INT[:, None], r"labels have shape \(40, 1\) but the model gives 3 logits"),
    (_MULTI, np.where(_INT == 0, -1, _INT), r"class labels must lie in \[0, 3\).*from -1 to 2"),
    (_MULTI, _INT + 0.5, r"labels of dtype float64 for a classification loss"),
    (_MULTI, _INT.astype(np.float32), r"labels of dtype float32 for a classification loss"),
    (_BINARY, _BIN * 2, r"binary labels must be 0 or 1, got \[2\]"),
    (_BINARY, _BIN * 2 - 1, r"binary labels must be 0 or 1, got \[-1\]"),
    (_BINARY, (_BIN * 2 - 1).astype(np.float32), r"binary labels must lie in \[0, 1\]"),
    ((jp.MLP((4, 1)), jp.softmax_cross_entropy), _BIN, r"the model has one output unit but softmax_cross_entropy is a multi-class"),
    (_MULTI, np.eye(4)[_INT], r"labels have shape \(40, 4\) but the model gives 3 logits"),
    (_MULTI, np.eye(3)[_INT] * 2, r"one-hot labels must be rows of probabilities"),
    (_MULTI, np.zeros((40, 3, 1)), r"labels must have shape \(n,\) or \(n, C\)"),
    ((jp.MLP((4, 3)), jp.binary_cross_entropy), _BIN, r"labels have shape \(40,\) but the model gives 3 logits per example and binary_cross_entropy"),
]


@pytest.mark.parametrize("setup, y, message", CASES)
def test_wrong_training_labels_are_one_line_errors(setup, y, message):
  with pytest.raises(ValueError, match="^fit: y: " + message) as e:
    _fit(*setup, y)
  assert "\n" not in str(e.value)


def test_wrong_evaluation_labels_are_errors_in_fit_and_evaluate():
  model, loss = _MULTI
  bad = np.where(_INT == 2, 3, _INT)  # a label equal to the class count (NaN before)
  with pytest.raises(ValueError, match=r"^fit: eval_data labels: class labels must lie in \[0, 3\)"):
    _fit(model, loss, _INT, eval_data=(_X, bad))
  state = jp.create_train_state(jax.random.key(0), model, optax.sgd(0.1), _X)
  with pytest.raises(ValueError, match=r"^evaluate: y: class labels must lie in \[0, 3\)"):
    jp.evaluate(jp.make_eval_step(model.apply, loss), state, _X, bad)


def test_good_labels_pass():
  _fit(*_MULTI, _INT)
  _fit(*_MULTI, np.eye(3, dtype=np.float32)[_INT])
  _fit(*_BINARY, _BIN.astype(np.float32))
  _fit(*_BINARY, np.full(40, 0.3, np.float32))  # soft targets
  _fit(*_BINARY, _BIN.astype(bool))


def test_errors_raised_while_tracing_a_users_step_pass_unchanged():
  def broken_loss(logits, labels):
    raise RuntimeError("my loss broke")

  with pytest.raises(RuntimeError, match="^my loss broke"):
    _fit(jp.MLP((4, 3)), broken_loss, _INT, eval_step=None)

  def wrong_shape_loss(logits, labels):
    return logits @ np.ones((5,), np.float32)  # (B, 3) @ (5,): a shape error in the user's code

  with pytest.raises(TypeError, match="dot_general requires contracting dimensions to have the same shape"):
    _fit(jp.MLP((4, 3)), wrong_shape_loss, _INT, eval_step=None)
