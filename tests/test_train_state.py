"""Model state (BatchNorm), example weights and what fit hands out."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import flax.linen as nn
import pytest

import jaxphys as jp


class _BNNet(nn.Module):
  @nn.compact
  def __call__(self, x, train=False):
    x = nn.Dense(8)(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=0.5)(x)
    return nn.Dense(3)(nn.relu(x))


def _data(n=96, seed=0):
  rng = np.random.default_rng(seed)
  x = (3 + 2 * rng.normal(size=(n, 4))).astype(np.float32)
  y = np.argmax(x[:, :3], 1)
  return x, y


def test_batchnorm_trains_with_batch_statistics_and_evaluates_with_running_averages():
  x, y = _data()
  model, tx = _BNNet(), optax.sgd(0.0)  # no parameter change: only the statistics move
  state = jp.create_train_state(jax.random.key(0), model, tx, x)
  assert set(state.model_state) == {"batch_stats"}
  step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx)
  batch = {"x": x[:32], "y": y[:32]}
  new, _ = step(state, batch, jax.random.key(1))
  # Reference: Flax's own mutable apply on the same batch.
  _, ref = model.apply({"params": state.params, **state.model_state}, x[:32], train=True,
                       mutable=["batch_stats"])
  chex.assert_trees_all_close(new.model_state["batch_stats"], ref["batch_stats"], rtol=1e-6)
  h = x[:32] @ np.asarray(state.params["Dense_0"]["kernel"]) + np.asarray(state.params["Dense_0"]["bias"])
  np.testing.assert_allclose(new.model_state["batch_stats"]["BatchNorm_0"]["mean"], 0.5 * h.mean(0), rtol=1e-5)
  # Evaluation and predict use the running averages, not the batch's statistics.
  variables = {"params": new.params, **new.model_state}
  expected = model.apply(variables, x, train=False)
  np.testing.assert_allclose(jp.predict(model.apply, new, x, batch_size=16), expected, rtol=1e-5, atol=1e-5)
  ev = jp.make_eval_step(model.apply, jp.softmax_cross_entropy)
  res = jp.evaluate(ev, new, x, y, batch_size=32)
  np.testing.assert_allclose(res["loss"], jp.softmax_cross_entropy(expected, y).mean(), rtol=1e-5)


def test_resnet_fits_with_stacked_runs_and_keeps_per_run_statistics():
  rng = np.random.default_rng(0)
  x = rng.random((24, 8, 8, 1), dtype=np.float32)
  y = np.arange(24) % 3
  model, tx = jp.ResNet(stage_features=(4, 8), num_classes=3), optax.adam(1e-2)
  states = jp.create_train_states(jax.random.split(jax.random.key(0), 2), model, tx, x)
  step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx)
  ev = jp.make_eval_step(model.apply, jp.softmax_cross_entropy)
  trained, hist = jp.fit(states, step, x, y, key=jax.random.key(1), epochs=2, batch_size=8,
                         eval_step=ev, eval_data=(x, y), eval_batch_size=8)
  chex.assert_shape(hist["eval_loss"], (2, 2))
  stats = trained.model_state["batch_stats"]["BatchNorm_0"]["mean"]
  assert stats.shape[0] == 2 and not np.allclose(stats[0], stats[1])
  one = jax.tree_util.tree_map(lambda a: a[1], trained)
  logits = jp.predict(model.apply, one, x, precision=ev.precision)  # the evaluation's precision
  np.testing.assert_allclose(hist["eval_loss"][-1, 1], jp.softmax_cross_entropy(logits, y).mean(), rtol=1e-4)


@pytest.mark.parametrize("binary", [False, True])
def test_integer_weights_train_exactly_like_duplicated_examples(binary):
  x, y = _data(40)
  model = jp.MLP((8, 1)) if binary else jp.MLP((8, 3))
  loss = jp.binary_cross_entropy if binary else jp.softmax_cross_entropy
  y = (y > 0).astype(np.int32) if binary else y
  tx = optax.sgd(0.1)
  counts = np.random.default_rng(1).integers(0, 4, len(x))
  state = jp.create_train_state(jax.random.key(0), model, tx, x)
  step = jp.make_train_step(model.apply, loss, tx)
  # One batch is the whole data set, so the example order cannot matter.
  weighted, hw = jp.fit(state, step, x, y, key=jax.random.key(1), epochs=3, batch_size=len(x),
                        sample_weight=counts)
  xd, yd = np.repeat(x, counts, 0), np.repeat(y, counts, 0)
  duplicated, hd = jp.fit(state, step, xd, yd, key=jax.random.key(1), epochs=3, batch_size=len(xd))
  chex.assert_trees_all_close(weighted.params, duplicated.params, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(hw["train_loss"], hd["train_loss"], rtol=1e-5)
  ev = jp.make_eval_step(model.apply, loss)
  np.testing.assert_allclose(jp.evaluate(ev, weighted, x, y, sample_weight=counts)["loss"],
                             jp.evaluate(ev, weighted, xd, yd)["loss"], rtol=1e-5)


def test_class_weight_is_a_per_class_sample_weight():
  x, y = _data(48)
  model, tx = jp.MLP((8, 3)), optax.sgd(0.1)
  state = jp.create_train_state(jax.random.key(0), model, tx, x)
  step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx)
  cw = {0: 1.0, 1: 3.0, 2: 0.5}
  a, _ = jp.fit(state, step, x, y, key=jax.random.key(1), epochs=2, batch_size=16, class_weight=cw)
  b, _ = jp.fit(state, step, x, y, key=jax.random.key(1), epochs=2, batch_size=16,
                sample_weight=np.array([cw[c] for c in y]))
  chex.assert_trees_all_close(a.params, b.params, rtol=1e-6)
  with pytest.raises(ValueError, match="class_weight has no weight for class"):
    jp.fit(state, step, x, y, key=jax.random.key(1), epochs=1, batch_size=16, class_weight={0: 1.0})
  with pytest.raises(ValueError, match=r"sample_weight must have shape \(48,\)"):
    jp.fit(state, step, x, y, key=jax.random.key(1), epochs=1, batch_size=16, sample_weight=np.ones(3))


def test_states_handed_to_callbacks_stay_valid_and_a_callback_can_stop():
  x, y = _data(64)
  model, tx = jp.MLP((8, 3)), optax.adam(1e-2)
  state = jp.create_train_state(jax.random.key(0), model, tx, x)
  kept = []

  class Keep(jp.callbacks.Callback):
    def on_epoch_end(self, loop, epoch, logs):
      kept.append(loop.state)
      loop.stop_training = epoch == 2

  for loop in ("scan", "python"):
    from jaxphys.train import _backend
    real = _backend.plan
    _backend.plan = lambda jaxpr: (loop, real(jaxpr)[1])
    try:
      kept.clear()
      step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx)
      final, hist = jp.fit(state, step, x, y, key=jax.random.key(1), epochs=10, batch_size=16,
                           callbacks=[Keep()])
    finally:
      _backend.plan = real
    assert len(hist["train_loss"]) == 3 and [int(s.step) for s in kept] == [4, 8, 12]
    np.asarray(state.params["Dense_0"]["kernel"])  # the input state is alive too
    chex.assert_trees_all_equal(kept[-1].params, final.params)


def test_reduce_on_plateau_lowers_the_learning_rate_under_fit():
  # Zero inputs and soft targets 1/2: the loss is log 2 at every step (a plateau).
  x, y = np.zeros((16, 2), np.float32), np.full(16, 0.5, np.float32)
  model = jp.LogisticRegression()
  plateau = dict(factor=0.5, patience=2, accumulation_size=1)
  tx = optax.chain(optax.inject_hyperparams(optax.sgd)(learning_rate=0.1),
                   optax.contrib.reduce_on_plateau(**plateau))
  state = jp.create_train_state(jax.random.key(0), model, tx, x)
  step = jp.make_train_step(model.apply, jp.binary_cross_entropy, tx)
  _, hist = jp.fit(state, step, x, y, key=jax.random.key(1), epochs=3, batch_size=4)
  # Reference: optax's reduce_on_plateau given the same values step by step.
  rop = optax.contrib.reduce_on_plateau(**plateau)
  s, scales = rop.init(state.params), []
  for i in range(12):
    _, s = rop.update(jax.tree_util.tree_map(jnp.zeros_like, state.params), s, value=jnp.log(2.0))
    if i % 4 == 3:
      scales.append(float(s.scale))
  np.testing.assert_allclose(hist["learning_rate"], 0.1 * np.array(scales), rtol=1e-6)
  assert hist["learning_rate"][-1] < 0.1 * 0.5


def test_optimisers_without_extra_arguments_still_work():
  x, y = _data(32)
  model, sgd = jp.MLP((8, 3)), optax.sgd(0.1)
  plain = optax.GradientTransformation(sgd.init, sgd.update)  # takes no value=
  states = []
  for tx in (plain, sgd):
    state = jp.create_train_state(jax.random.key(0), model, tx, x)
    step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx)
    states.append(jp.fit(state, step, x, y, key=jax.random.key(1), epochs=1, batch_size=8)[0])
  chex.assert_trees_all_close(states[0].params, states[1].params, rtol=1e-6)
