"""The trainer: convergence to scikit-learn's optimum, vmapped sweeps, padding,
recompilation, determinism and exact resumption."""

import contextlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.linear_model import LogisticRegression as SkLogistic

import jaxphys as jp
from jaxphys.train import _backend


@contextlib.contextmanager
def _forced_loop(loop):
  """Makes the backend choose ``loop`` ("scan" or "python") for every program."""
  real = _backend.plan
  _backend.plan = lambda jaxpr: (loop, real(jaxpr)[1])
  try:
    yield
  finally:
    _backend.plan = real


@pytest.fixture(params=["scan", "python"])
def loop(request):
  with _forced_loop(request.param):
    yield request.param


class _OnEpoch(jp.callbacks.Callback):
  def __init__(self, fn):
    self.fn = fn

  def on_epoch_end(self, loop, epoch, logs):
    self.fn(loop, epoch, logs)


def _logistic_data(n=400, d=6, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, d)).astype(np.float32)
  w = rng.normal(size=d)
  y = (rng.random(n) < 1 / (1 + np.exp(-(x @ w + 0.5)))).astype(np.int32)
  return x, y


def _full_batch_fit(model, loss, x, y, c):
  """Minimises mean loss + l2 / (C n): scikit-learn's objective divided by C n."""
  tx = optax.adam(optax.cosine_decay_schedule(0.1, 2000))
  state = jp.create_train_state(jax.random.key(0), model, tx, x, reg_strength=1 / (c * len(x)))
  step = jp.make_train_step(model.apply, loss, tx, jp.l2)
  state, _ = jp.fit(state, step, x, y, key=jax.random.key(1), epochs=2000, batch_size=len(x))
  return state.params["Dense_0"]


@pytest.mark.parametrize("c", [0.05, 1.0])
def test_logistic_regression_matches_sklearn(c):
  x, y = _logistic_data()
  sk = SkLogistic(C=c, tol=1e-12, max_iter=10_000).fit(x, y)
  p = _full_batch_fit(jp.LogisticRegression(), jp.binary_cross_entropy, x, y, c)
  # Tolerance: 2e-3 absolute on coefficients of order one (Adam, 2000 full-batch steps).
  np.testing.assert_allclose(p["kernel"][:, 0], sk.coef_[0], atol=2e-3)
  np.testing.assert_allclose(p["bias"], sk.intercept_, atol=2e-3)


def test_softmax_regression_matches_sklearn_multinomial():
  x, _ = _logistic_data(seed=1)
  rng = np.random.default_rng(2)
  y = np.argmax(x[:, :3] @ rng.normal(size=(3, 4)) + rng.normal(size=(len(x), 4)), 1)
  sk = SkLogistic(C=0.5, tol=1e-12, max_iter=10_000).fit(x, y)
  p = _full_batch_fit(jp.SoftmaxRegression(4), jp.softmax_cross_entropy, x, y, 0.5)
  np.testing.assert_allclose(np.asarray(p["kernel"]).T, sk.coef_, atol=2e-3)
  # Softmax is invariant to a common shift of the (unpenalised) intercepts.
  b = np.asarray(p["bias"])
  np.testing.assert_allclose(b - b.mean(), sk.intercept_ - sk.intercept_.mean(), atol=2e-3)


def _mlp_setup(n=203):
  rng = np.random.default_rng(3)
  x = rng.normal(size=(n, 8)).astype(np.float32)
  y = (x[:, 0] * x[:, 1] > 0).astype(np.int32)
  model = jp.MLP((16, 16, 2), dropout=0.1)
  tx = optax.adam(1e-2)
  return model, tx, x, y


@pytest.mark.usefixtures("loop")
def test_vmapped_sweep_equals_runs_one_by_one():
  model, tx, x, y = _mlp_setup()
  step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx, jp.l2)
  keys = jax.random.split(jax.random.key(4), 3)
  fit_keys = jax.random.split(jax.random.key(5), 3)
  strengths = jnp.array([0.0, 1e-3, 1e-1])
  states = jp.create_train_states(keys, model, tx, x, reg_strength=strengths)
  swept, hist = jp.fit(states, step, x, y, key=fit_keys, epochs=3, batch_size=32)
  chex.assert_shape(hist["train_loss"], (3, 3))
  for i in range(3):
    single = jp.create_train_state(keys[i], model, tx, x, reg_strength=strengths[i])
    single, h = jp.fit(single, step, x, y, key=fit_keys[i], epochs=3, batch_size=32)
    chex.assert_trees_all_close(jax.tree_util.tree_map(lambda a: a[i], swept.params),
                                single.params, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(hist["train_loss"][:, i], h["train_loss"], rtol=1e-5)


@pytest.mark.usefixtures("loop")
def test_shared_order_sweep_trains_every_run_in_run_zeros_order():
  model, tx, x, y = _mlp_setup()
  model = model.clone(dropout=0.0)  # no per-step randomness: only the order matters
  step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx)
  keys = jax.random.split(jax.random.key(4), 3)
  fit_keys = jax.random.split(jax.random.key(5), 3)
  states = jp.create_train_states(keys, model, tx, x)
  swept, hist = jp.fit(states, step, x, y, key=fit_keys, epochs=3, batch_size=32,
                       eval_step=jp.make_eval_step(model.apply, jp.softmax_cross_entropy),
                       eval_data=(x[:70], y[:70]), eval_batch_size=32,
                       shared_order=True)
  chex.assert_shape(hist["eval_accuracy"], (3, 3))
  for i in range(3):  # run i alone with run 0's key: the same order
    single = jp.create_train_state(keys[i], model, tx, x)
    single, h = jp.fit(single, step, x, y, key=fit_keys[0], epochs=3, batch_size=32)
    chex.assert_trees_all_close(jax.tree_util.tree_map(lambda a: a[i], swept.params),
                                single.params, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(hist["train_loss"][:, i], h["train_loss"], rtol=1e-5)
    ev = jp.evaluate(jp.make_eval_step(model.apply, jp.softmax_cross_entropy), single.params,
                     x[:70], y[:70], batch_size=32)
    np.testing.assert_allclose(hist["eval_accuracy"][-1, i], ev["accuracy"], rtol=1e-6)


def test_shared_order_keeps_each_runs_dropout_key():
  model, tx, x, y = _mlp_setup()  # dropout 0.1
  step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx)
  states = jp.create_train_states(jax.random.split(jax.random.key(4), 2), model, tx, x)
  fit_keys = jax.random.split(jax.random.key(5), 2)
  shared, _ = jp.fit(states, step, x, y, key=fit_keys, epochs=2, batch_size=32,
                     shared_order=True)
  own, _ = jp.fit(states, step, x, y, key=fit_keys, epochs=2, batch_size=32)
  first = lambda t, i: jax.tree_util.tree_map(lambda a: a[i], t)
  # Run 0 is the same run either way; run 1 sees run 0's order, so it changes.
  chex.assert_trees_all_close(first(shared.params, 0), first(own.params, 0), atol=1e-6)
  assert not np.allclose(shared.params["Dense_0"]["kernel"][1], own.params["Dense_0"]["kernel"][1])


def test_scan_and_python_loops_agree():
  model, tx, x, y = _mlp_setup()
  step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx)
  state = jp.create_train_state(jax.random.key(0), model, tx, x)
  with _forced_loop("scan"):
    a, ha = jp.fit(state, step, x, y, key=jax.random.key(1), epochs=2, batch_size=50)
  with _forced_loop("python"):
    b, hb = jp.fit(state, step, x, y, key=jax.random.key(1), epochs=2, batch_size=50)
  chex.assert_trees_all_close(a.params, b.params, atol=1e-6)


@pytest.mark.usefixtures("loop")
def test_no_recompilation_across_epochs_and_partial_batch():
  model, tx, x, y = _mlp_setup(n=203)  # 203 = 6 * 32 + 11: a partial last batch
  # fit traces the step twice in all: once abstractly for the structure of its metrics,
  # once to compile the epoch. A retrace per epoch or for the partial batch fails here.
  jitted = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx)
  step = chex.assert_max_traces(lambda state, batch, key: jitted(state, batch, key), n=2)
  state = jp.create_train_state(jax.random.key(0), model, tx, x)
  _, hist = jp.fit(state, step, x, y, key=jax.random.key(1), epochs=4, batch_size=32)
  chex.assert_shape(hist["train_loss"], (4,))
  chex.clear_trace_counter()


def test_padded_batch_equals_the_partial_batch():
  _, tx, x, y = _mlp_setup()
  model = jp.MLP((16, 16, 2))  # no dropout: the two batches would draw different masks
  step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx, jp.l2)
  state = jp.create_train_state(jax.random.key(0), model, tx, x, reg_strength=1e-2)
  key = jax.random.key(9)
  partial, _ = step(state, {"x": x[:11], "y": y[:11]}, key)
  pad_x = np.concatenate([x[:11], x[50:71]])
  pad_y = np.concatenate([y[:11], y[50:71]])
  weight = np.r_[np.ones(11), np.zeros(21)].astype(np.float32)
  padded, m = step(state, {"x": pad_x, "y": pad_y, "weight": weight}, key)
  chex.assert_trees_all_close(partial.params, padded.params, atol=1e-6)
  np.testing.assert_allclose(m["loss"], jp.softmax_cross_entropy(
      model.apply({"params": state.params}, x[:11]), y[:11]).mean(), rtol=1e-5)


def test_same_seed_same_parameters_and_different_seed_differs():
  model, tx, x, y = _mlp_setup()
  step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx)
  runs = []
  for seed in (0, 0, 1):
    state = jp.create_train_state(jax.random.key(seed), model, tx, x)
    state, _ = jp.fit(state, step, x, y, key=jax.random.key(seed), epochs=2, batch_size=32)
    runs.append(jax.tree_util.tree_leaves(state.params))
  assert all(np.array_equal(a, b) for a, b in zip(runs[0], runs[1]))
  assert not all(np.array_equal(a, b) for a, b in zip(runs[0], runs[2]))


def test_resume_from_an_epoch_is_exact():
  model, tx, x, y = _mlp_setup()
  step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx)
  state = jp.create_train_state(jax.random.key(0), model, tx, x)
  key = jax.random.key(7)
  full, _ = jp.fit(state, step, x, y, key=key, epochs=4, batch_size=32)
  seen = []
  half, _ = jp.fit(state, step, x, y, key=key, epochs=2, batch_size=32,
                   callbacks=[_OnEpoch(lambda loop, epoch, logs: seen.append(epoch))])
  assert seen == [0, 1]
  resumed, h = jp.fit(half, step, x, y, key=key, epochs=4, batch_size=32, initial_epoch=2)
  assert len(h["train_loss"]) == 2 and int(resumed.step) == int(full.step)
  for a, b in zip(jax.tree_util.tree_leaves(full.params), jax.tree_util.tree_leaves(resumed.params)):
    np.testing.assert_array_equal(a, b)


def test_history_records_what_the_backend_chose_for_each_pass(monkeypatch):
  model, tx, x, y = _mlp_setup(n=200)
  plans, real = [], _backend.plan
  monkeypatch.setattr(_backend, "plan", lambda jaxpr: plans.append(real(jaxpr)) or plans[-1])
  step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx)
  ev = jp.make_eval_step(model.apply, jp.softmax_cross_entropy)
  state = jp.create_train_state(jax.random.key(0), model, tx, x)
  _, hist = jp.fit(state, step, x, y, key=jax.random.key(1), epochs=1, batch_size=64,
                   eval_step=ev, eval_data=(x, y))
  assert len(plans) == 2  # the training epoch, then the evaluation
  for name, (loop, options) in zip(("train", "eval"), plans):
    assert hist["compilation"][name] == {"backend": jax.default_backend(), "loop": loop,
                                         "xla_options": options, "precision": "float32"}
  step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx, precision="bfloat16")
  epoch = jp.make_train_epoch(step, x, y, batch_size=64)
  assert epoch.compilation is None  # nothing compiled yet
  epoch(state, jax.random.key(1), 0)
  assert epoch.compilation == {"backend": jax.default_backend(), "loop": plans[2][0],
                               "xla_options": plans[2][1], "precision": "bfloat16"}


def test_fit_learns_and_evaluate_matches_predict():
  model, tx, x, y = _mlp_setup(n=1000)
  step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx)
  ev = jp.make_eval_step(model.apply, jp.softmax_cross_entropy)
  state = jp.create_train_state(jax.random.key(0), model, tx, x)
  state, hist = jp.fit(state, step, x, y, key=jax.random.key(1), epochs=15, batch_size=64,
                       eval_step=ev, eval_data=(x[:300], y[:300]))
  assert hist["train_loss"][-1] < 0.5 * hist["train_loss"][0]
  assert hist["eval_accuracy"][-1] > 0.9  # an XOR of signs: not linearly separable
  assert hist["compile_seconds"] > 0 and hist["epoch_seconds"].shape == (15,)
  logits = jp.predict(model.apply, state.params, x, batch_size=128)
  chex.assert_shape(logits, (1000, 2))
  res = jp.evaluate(ev, state.params, x, y, batch_size=128)
  np.testing.assert_allclose(res["accuracy"], jp.accuracy(y, logits), atol=1e-6)
  np.testing.assert_allclose(res["loss"], jp.softmax_cross_entropy(logits, y).mean(), rtol=1e-5)
  np.testing.assert_allclose(hist["eval_accuracy"][-1], jp.accuracy(y[:300], logits[:300]), atol=1e-6)


def test_bad_arguments_are_errors():
  model, tx, x, y = _mlp_setup()
  step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx)
  state = jp.create_train_state(jax.random.key(0), model, tx, x)
  kw = dict(key=jax.random.key(0))
  with pytest.raises(ValueError, match="batch_size must be a positive integer"):
    jp.fit(state, step, x, y, epochs=1, batch_size=0, **kw)
  with pytest.raises(ValueError, match="epochs and initial_epoch must be non-negative"):
    jp.fit(state, step, x, y, epochs=-1, batch_size=8, **kw)
  with pytest.raises(ValueError, match="x has 203 examples but y has 200"):
    jp.fit(state, step, x, y[:200], epochs=1, batch_size=8, **kw)


def test_memory_stays_flat_over_hundreds_of_epochs():
  # Nothing may accumulate per epoch: live device arrays and resident memory stay flat.
  rng = np.random.default_rng(0)
  x = rng.normal(size=(64, 4)).astype(np.float32)
  y = (x[:, 0] > 0).astype(np.int32)
  model, tx = jp.MLP((8, 2)), optax.adam(1e-2)
  step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx)
  evals = jp.make_eval_step(model.apply, jp.softmax_cross_entropy)
  rss = lambda: int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1])
  live, resident = [], []

  def record(loop, epoch, logs):
    live.append(len(jax.live_arrays()))
    resident.append(rss())

  state = jp.create_train_state(jax.random.key(0), model, tx, x)
  jp.fit(state, step, x, y, key=jax.random.key(1), epochs=400, batch_size=16, eval_step=evals,
         eval_data=(x, y), callbacks=[_OnEpoch(record)])
  assert max(live[50:]) == live[50], (live[50], max(live[50:]))
  assert resident[-1] - resident[50] < 8 * 1024, (resident[50], resident[-1])  # KiB


def test_divergence_names_the_epoch_step_and_run():
  model, _, x, y = _mlp_setup()
  tx = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)
  step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx)
  states = jp.create_train_states(jax.random.split(jax.random.key(0), 2), model, tx, x)
  states.opt_state.hyperparams["learning_rate"] = jnp.array([0.1, 1e30])  # run 1 blows up
  with pytest.raises(jp.errors.TrainingDiverged, match=r"training diverged at epoch 0, step \d+ in run\(s\) 1") as e:
    jp.fit(states, step, x, y, key=jax.random.key(1), epochs=3, batch_size=32)
  assert e.value.runs == [1] and e.value.step >= 1 and e.value.history == {}
