"""The trainer: convergence to scikit-learn's optimum, vmapped sweeps, padding,
recompilation, determinism and exact resumption."""

import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.linear_model import LogisticRegression as SkLogistic

import jaxphys as jp


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
  state, _ = jp.fit(state, step, x, y, key=jax.random.key(1), epochs=2000, batch_size=len(x),
                    progress=False)
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


@pytest.mark.parametrize("loop", ["scan", "python"])
def test_vmapped_sweep_equals_runs_one_by_one(loop):
  model, tx, x, y = _mlp_setup()
  step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx, jp.l2)
  keys = jax.random.split(jax.random.key(4), 3)
  fit_keys = jax.random.split(jax.random.key(5), 3)
  strengths = jnp.array([0.0, 1e-3, 1e-1])
  states = jp.create_train_states(keys, model, tx, x, reg_strength=strengths)
  swept, hist = jp.fit(states, step, x, y, key=fit_keys, epochs=3, batch_size=32, loop=loop,
                       progress=False)
  chex.assert_shape(hist["train_loss"], (3, 3))
  for i in range(3):
    single = jp.create_train_state(keys[i], model, tx, x, reg_strength=strengths[i])
    single, h = jp.fit(single, step, x, y, key=fit_keys[i], epochs=3, batch_size=32, loop=loop,
                       progress=False)
    chex.assert_trees_all_close(jax.tree_util.tree_map(lambda a: a[i], swept.params),
                                single.params, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(hist["train_loss"][:, i], h["train_loss"], rtol=1e-5)


@pytest.mark.parametrize("loop", ["scan", "python"])
def test_shared_order_sweep_trains_every_run_in_run_zeros_order(loop):
  model, tx, x, y = _mlp_setup()
  model = model.clone(dropout=0.0)  # no per-step randomness: only the order matters
  step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx)
  keys = jax.random.split(jax.random.key(4), 3)
  fit_keys = jax.random.split(jax.random.key(5), 3)
  states = jp.create_train_states(keys, model, tx, x)
  swept, hist = jp.fit(states, step, x, y, key=fit_keys, epochs=3, batch_size=32, loop=loop,
                       eval_step=jp.make_eval_step(model.apply, jp.softmax_cross_entropy),
                       eval_data=(x[:70], y[:70]), eval_batch_size=32, progress=False,
                       shared_order=True)
  chex.assert_shape(hist["eval_accuracy"], (3, 3))
  for i in range(3):  # run i alone with run 0's key: the same order
    single = jp.create_train_state(keys[i], model, tx, x)
    single, h = jp.fit(single, step, x, y, key=fit_keys[0], epochs=3, batch_size=32, loop=loop,
                       progress=False)
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
  shared, _ = jp.fit(states, step, x, y, key=fit_keys, epochs=2, batch_size=32, progress=False,
                     shared_order=True)
  own, _ = jp.fit(states, step, x, y, key=fit_keys, epochs=2, batch_size=32, progress=False)
  first = lambda t, i: jax.tree_util.tree_map(lambda a: a[i], t)
  # Run 0 is the same run either way; run 1 sees run 0's order, so it changes.
  chex.assert_trees_all_close(first(shared.params, 0), first(own.params, 0), atol=1e-6)
  assert not np.allclose(shared.params["Dense_0"]["kernel"][1], own.params["Dense_0"]["kernel"][1])


def test_scan_and_python_loops_agree():
  model, tx, x, y = _mlp_setup()
  step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx)
  state = jp.create_train_state(jax.random.key(0), model, tx, x)
  a, ha = jp.fit(state, step, x, y, key=jax.random.key(1), epochs=2, batch_size=50, progress=False)
  b, hb = jp.fit(state, step, x, y, key=jax.random.key(1), epochs=2, batch_size=50,
                 loop="python", progress=False)
  chex.assert_trees_all_close(a.params, b.params, atol=1e-6)


@pytest.mark.parametrize("loop", ["scan", "python"])
def test_no_recompilation_across_epochs_and_partial_batch(loop):
  model, tx, x, y = _mlp_setup(n=203)  # 203 = 6 * 32 + 11: a partial last batch
  # fit traces the step twice in all: once abstractly for the structure of its metrics,
  # once to compile the epoch. A retrace per epoch or for the partial batch fails here.
  jitted = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx)
  step = chex.assert_max_traces(lambda state, batch, key: jitted(state, batch, key), n=2)
  state = jp.create_train_state(jax.random.key(0), model, tx, x)
  _, hist = jp.fit(state, step, x, y, key=jax.random.key(1), epochs=4, batch_size=32, loop=loop,
                   progress=False)
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
    state, _ = jp.fit(state, step, x, y, key=jax.random.key(seed), epochs=2, batch_size=32,
                      progress=False)
    runs.append(jax.tree_util.tree_leaves(state.params))
  assert all(np.array_equal(a, b) for a, b in zip(runs[0], runs[1]))
  assert not all(np.array_equal(a, b) for a, b in zip(runs[0], runs[2]))


def test_resume_from_an_epoch_is_exact():
  model, tx, x, y = _mlp_setup()
  step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx)
  state = jp.create_train_state(jax.random.key(0), model, tx, x)
  key = jax.random.key(7)
  full, _ = jp.fit(state, step, x, y, key=key, epochs=4, batch_size=32, progress=False)
  seen = []
  half, _ = jp.fit(state, step, x, y, key=key, epochs=2, batch_size=32, progress=False,
                   callback=lambda epoch, s, h: seen.append(epoch))
  assert seen == [0, 1]
  resumed, h = jp.fit(half, step, x, y, key=key, epochs=4, batch_size=32, initial_epoch=2,
                      progress=False)
  assert len(h["train_loss"]) == 2 and int(resumed.step) == int(full.step)
  for a, b in zip(jax.tree_util.tree_leaves(full.params), jax.tree_util.tree_leaves(resumed.params)):
    np.testing.assert_array_equal(a, b)


def test_fit_learns_and_evaluate_matches_predict():
  model, tx, x, y = _mlp_setup(n=1000)
  step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx)
  ev = jp.make_eval_step(model.apply, jp.softmax_cross_entropy)
  state = jp.create_train_state(jax.random.key(0), model, tx, x)
  state, hist = jp.fit(state, step, x, y, key=jax.random.key(1), epochs=15, batch_size=64,
                       eval_step=ev, eval_data=(x[:300], y[:300]), progress=False)
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
  kw = dict(key=jax.random.key(0), progress=False)
  with pytest.raises(ValueError, match="batch_size must be a positive integer"):
    jp.fit(state, step, x, y, epochs=1, batch_size=0, **kw)
  with pytest.raises(ValueError, match="epochs must be a non-negative integer"):
    jp.fit(state, step, x, y, epochs=-1, batch_size=8, **kw)
  with pytest.raises(ValueError, match="x has 203 examples but y has 200"):
    jp.fit(state, step, x, y[:200], epochs=1, batch_size=8, **kw)
  with pytest.raises(ValueError, match="loop must be"):
    jp.fit(state, step, x, y, epochs=1, batch_size=8, loop="while", **kw)


def test_auto_loop_uses_python_dispatch_for_convolutions_on_cpu():
  x = np.random.default_rng(0).random((40, 8, 8, 1), dtype=np.float32)
  y = np.arange(40) % 3
  tx = optax.sgd(0.1)
  for model, expected in [(jp.CNN(conv_features=(4,), dense_features=(), num_classes=3), "python"),
                          (jp.MLP((8, 3)), "scan")]:
    step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx)
    state = jp.create_train_state(jax.random.key(0), model, tx, x)
    _, hist = jp.fit(state, step, x, y, key=jax.random.key(1), epochs=1, batch_size=16,
                     progress=False)
    assert hist["loop"] == (expected if jax.default_backend() == "cpu" else "scan")


_SMALL_CNN = jp.CNN(conv_features=(16, 32), dense_features=(8,), num_classes=3)


def _cnn_step_and_args(batch=8):
  """A CNN just big enough that XLA's CPU defaults hand its convolutions to YNNPACK."""
  model, tx = _SMALL_CNN, optax.adam(1e-2)
  x = np.random.default_rng(0).random((batch, 12, 12, 1), dtype=np.float32)
  state = jp.create_train_state(jax.random.key(0), model, tx, x)
  step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx)
  return step, (state, {"x": x, "y": np.arange(batch) % 3}, jax.random.key(1))


def _library_fusions(hlo: str) -> list:
  """The text of each fused computation XLA handed to YNNPACK."""
  bodies = dict(re.findall(r"^(%[\w.\-]+) [^\n]*\{\n(.*?)\n\}", hlo, re.S | re.M))
  calls = re.findall(r"calls=(%[\w.\-]+), [^\n]*\"kind\":\"__ynn_fusion\"", hlo)
  return [bodies[c] for c in calls]


def _program(hlo: str) -> list:
  """A compiled program's instructions, sorted, without source locations (their tables and
  each op's metadata) and without the numbers XLA appends to names (``%dot.10``)."""
  code = [line for line in hlo.splitlines() if line.startswith((" ", "%", "ENTRY", "}"))]
  code = re.sub(r", metadata=\{[^}]*\}", "", "\n".join(code))
  return sorted(re.sub(r"\b([A-Za-z_][\w\-]*)\.\d+\b", r"\1", code).splitlines())


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="CPU compiler options")
def test_compiler_options_keep_convolutions_off_ynnpack_and_change_nothing_else():
  options = jp.compiler_options()
  if not options:
    pytest.skip("this jaxlib has no YNNPACK fusions")
  step, args = _cnn_step_and_args()
  default = step.lower(*args).compile()
  ours = jax.jit(step, compiler_options=options).lower(*args).compile()
  assert any("convolution(" in f for f in _library_fusions(default.as_text()))  # XLA's default
  assert not any("convolution(" in f for f in _library_fusions(ours.as_text()))
  assert any("dot(" in f for f in _library_fusions(ours.as_text()))  # dots stay on YNNPACK
  # Same numbers (the two programs only convolve differently).
  chex.assert_trees_all_close(default(*args), ours(*args), rtol=1e-5, atol=1e-6)
  # A program without convolutions compiles exactly as with XLA's defaults.
  mlp, tx = jp.MLP((128, 3)), optax.adam(1e-2)
  x = np.random.default_rng(0).random((128, 64), dtype=np.float32)
  args = (jp.create_train_state(jax.random.key(0), mlp, tx, x), {"x": x, "y": np.arange(128) % 3},
          jax.random.key(1))
  mlp_step = jp.make_train_step(mlp.apply, jp.softmax_cross_entropy, tx)
  hlo = mlp_step.lower(*args).compile().as_text()
  fusions = _library_fusions(hlo)  # XLA's default on this MLP: dots and a reduction
  assert any("dot(" in f for f in fusions) and any("reduce(" in f for f in fusions)
  ours = jax.jit(mlp_step, compiler_options=options).lower(*args).compile().as_text()
  assert _program(ours) == _program(hlo)
  assert jp.compiler_options("gpu") == {} == jp.compiler_options("gpu", convolutions=True)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="CPU compiler options")
def test_convolutional_programs_also_get_the_memory_minimising_schedule():
  options = jp.compiler_options()
  conv_options = jp.compiler_options(convolutions=True)
  if not options or conv_options == options:
    pytest.skip("this jaxlib lacks the options")
  assert conv_options == {**options,
                          "xla_cpu_scheduler_type": "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED"}
  # The schedule orders the same operations: the same numbers, bit for bit.
  step, args = _cnn_step_and_args()
  a = jax.jit(step, compiler_options=options)(*args)
  b = jax.jit(step, compiler_options=conv_options)(*args)
  chex.assert_trees_all_equal(a, b)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="CPU compiler options")
def test_fit_and_evaluate_compile_with_the_compiler_options(monkeypatch):
  if not jp.compiler_options(convolutions=True):  # (runs, and caches, the probes on the real options)
    pytest.skip("this jaxlib has no YNNPACK fusions")
  step, (state, batch, _) = _cnn_step_and_args()
  # An option value XLA rejects proves that fit and evaluate hand the options to XLA.
  monkeypatch.setattr(jp.train, "_CPU_OPTIONS",
                      {"xla_cpu_experimental_ynn_fusion_type": "NOT_A_FUSION_TYPE"})
  for loop in ("python", "scan"):
    with pytest.raises(Exception, match="NOT_A_FUSION_TYPE"):
      jp.fit(state, step, batch["x"], batch["y"], key=jax.random.key(1), epochs=1, batch_size=4,
             progress=False, loop=loop)
  eval_step = jp.make_eval_step(_SMALL_CNN.apply, jp.softmax_cross_entropy)
  with pytest.raises(Exception, match="NOT_A_FUSION_TYPE"):
    jp.evaluate(eval_step, state.params, batch["x"], batch["y"], batch_size=4)
  # The convolutions' option group goes to programs that convolve, and to no other.
  monkeypatch.undo()
  if jp.compiler_options(convolutions=True) == jp.compiler_options():
    return
  monkeypatch.setattr(jp.train, "_CPU_CONV_OPTIONS", {"xla_cpu_scheduler_type": "NOT_A_SCHEDULE"})
  for loop in ("python", "scan"):
    with pytest.raises(Exception, match="NOT_A_SCHEDULE"):
      jp.fit(state, step, batch["x"], batch["y"], key=jax.random.key(1), epochs=1, batch_size=4,
             progress=False, loop=loop)
  with pytest.raises(Exception, match="NOT_A_SCHEDULE"):
    jp.evaluate(eval_step, state.params, batch["x"], batch["y"], batch_size=4)
  mlp, tx = jp.MLP((8, 10)), optax.sgd(0.1)
  mlp_step = jp.make_train_step(mlp.apply, jp.softmax_cross_entropy, tx)
  mlp_state = jp.create_train_state(jax.random.key(0), mlp, tx, batch["x"])
  for loop in ("python", "scan"):
    jp.fit(mlp_state, mlp_step, batch["x"], batch["y"], key=jax.random.key(1), epochs=1,
           batch_size=4, progress=False, loop=loop)


def test_dot_flops_count_a_steps_matrix_products():
  # MLP d -> h -> c on a batch of B: the forward products (B d h, B h c), their kernel
  # gradients (the same sizes) and the input gradient of the second layer (B h c); none
  # for the input images. 2 FLOPs per multiply-add.
  b, d, h, c, k = 16, 12, 20, 5, 3
  mlp, tx = jp.MLP((h, c)), optax.adam(1e-3)
  x = np.zeros((b, d), np.float32)
  batch = {"x": x, "y": np.zeros(b, np.int32)}
  step = jp.make_train_step(mlp.apply, jp.softmax_cross_entropy, tx)
  one = jax.make_jaxpr(step)(jp.create_train_state(jax.random.key(0), mlp, tx, x), batch,
                             jax.random.key(1))
  assert jp.train._dot_flops(one.jaxpr) == 2 * b * (2 * d * h + 3 * h * c)
  states = jp.create_train_states(jax.random.split(jax.random.key(0), k), mlp, tx, x)
  many = jax.make_jaxpr(jax.vmap(step, in_axes=(0, None, 0)))(states, batch,
                                                              jax.random.split(jax.random.key(1), k))
  assert jp.train._dot_flops(many.jaxpr) == k * 2 * b * (2 * d * h + 3 * h * c)
  assert jp.train._dot_flops(jax.make_jaxpr(lambda v: jnp.sin(v) * 2)(x).jaxpr) == 0


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="CPU compiler options")
def test_small_programs_compile_their_dots_off_ynnpack_with_the_same_numbers():
  if not jp.compiler_options():
    pytest.skip("this jaxlib has no YNNPACK fusions")
  small = jp.compiler_options(dot_flops=1e6)
  assert jp.compiler_options(dot_flops=1e9) == jp.compiler_options()
  assert jp.compiler_options(convolutions=True, dot_flops=1e6) == jp.compiler_options(convolutions=True)
  mlp, tx = jp.MLP((128, 3)), optax.adam(1e-2)
  x = np.random.default_rng(0).random((128, 64), dtype=np.float32)
  args = (jp.create_train_state(jax.random.key(0), mlp, tx, x), {"x": x, "y": np.arange(128) % 3},
          jax.random.key(1))
  step = jp.make_train_step(mlp.apply, jp.softmax_cross_entropy, tx)
  default = jax.jit(step, compiler_options=jp.compiler_options()).lower(*args).compile()
  ours = jax.jit(step, compiler_options=small).lower(*args).compile()
  assert any("dot(" in f for f in _library_fusions(default.as_text()))
  assert not any("dot(" in f for f in _library_fusions(ours.as_text()))
  assert any("reduce(" in f for f in _library_fusions(ours.as_text()))  # reductions stay
  chex.assert_trees_all_close(default(*args), ours(*args), rtol=1e-5, atol=1e-6)


def _small_mlp_problem():
  """40 examples of 8 features, an MLP 8 -> 8 -> 2 (SGD): its state, train and eval steps."""
  _, _, x, y = _mlp_setup(40)
  mlp, tx = jp.MLP((8, 2)), optax.sgd(0.1)
  step = jp.make_train_step(mlp.apply, jp.softmax_cross_entropy, tx)
  state = jp.create_train_state(jax.random.key(0), mlp, tx, x)
  return x, y, state, step, jp.make_eval_step(mlp.apply, jp.softmax_cross_entropy)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="CPU compiler options")
def test_fit_and_evaluate_choose_the_dot_options_by_the_steps_dot_flops(monkeypatch):
  if not jp.compiler_options(dot_flops=0):  # (runs, and caches, the probes on the real options)
    pytest.skip("this jaxlib has no YNNPACK fusions")
  x, y, state, step, eval_step = _small_mlp_problem()
  # An option value XLA rejects shows which programs get the small programs' options.
  monkeypatch.setattr(jp.train, "_CPU_SMALL_OPTIONS",
                      {"xla_cpu_experimental_ynn_fusion_type": "NOT_A_FUSION_TYPE"})
  run = lambda loop: jp.fit(state, step, x, y, key=jax.random.key(1), epochs=1, batch_size=8,
                            progress=False, loop=loop)
  for loop in ("python", "scan"):
    with pytest.raises(Exception, match="NOT_A_FUSION_TYPE"):
      run(loop)
  with pytest.raises(Exception, match="NOT_A_FUSION_TYPE"):
    jp.evaluate(eval_step, state.params, x, y, batch_size=8)
  monkeypatch.setattr(jp.train, "_SMALL_DOT_FLOPS", 2 * 8 * (2 * 8 * 8 + 3 * 8 * 2))  # not below
  for loop in ("python", "scan"):
    run(loop)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="CPU compiler options")
def test_fit_and_evaluate_take_the_users_xla_options_instead_of_their_own(monkeypatch):
  if not jp.compiler_options(dot_flops=0):
    pytest.skip("this jaxlib has no YNNPACK fusions")
  x, y, state, step, eval_step = _small_mlp_problem()
  run = lambda loop, options: jp.fit(state, step, x, y, key=jax.random.key(1), epochs=2, batch_size=8,
                                     progress=False, loop=loop, xla_options=options)
  ours = {loop: run(loop, None)[0] for loop in ("python", "scan")}
  bad = {"xla_cpu_experimental_ynn_fusion_type": "NOT_A_FUSION_TYPE"}
  for loop in ("python", "scan"):  # the user's options reach XLA...
    with pytest.raises(Exception, match="NOT_A_FUSION_TYPE"):
      run(loop, bad)
  with pytest.raises(Exception, match="NOT_A_FUSION_TYPE"):
    jp.evaluate(eval_step, state.params, x, y, batch_size=8, xla_options=bad)
  # ...in place of jaxphys's own ({}: XLA's defaults), with the same training to rounding.
  monkeypatch.setattr(jp.train, "_CPU_OPTIONS", bad)
  monkeypatch.setattr(jp.train, "_CPU_SMALL_OPTIONS", bad)
  for loop in ("python", "scan"):
    chex.assert_trees_all_close(run(loop, {})[0].params, ours[loop].params, rtol=1e-5, atol=1e-6)
  jp.evaluate(eval_step, state.params, x, y, batch_size=8, xla_options={})
  with pytest.raises(ValueError, match="xla_options must be a dict"):
    run("scan", "fast")


@pytest.mark.parametrize("n", [1, 2, 999, 60_000, 100_001])
def test_host_shuffle_is_jax_random_permutation(n):
  # fit shuffles on the host for speed; the order must stay jax.random.permutation's.
  from jaxphys import _shuffle
  key = jax.random.key(n)
  expected = jax.random.permutation(jax.random.split(key)[0], n)
  np.testing.assert_array_equal(_shuffle.permutations(key, n), expected)
  keys = jax.random.split(key, 3)
  batch = jax.vmap(lambda k: jax.random.permutation(jax.random.split(k)[0], n))(keys)
  np.testing.assert_array_equal(_shuffle.permutations(keys, n), batch)
  raw = jax.random.PRNGKey(n)  # legacy uint32 keys
  np.testing.assert_array_equal(_shuffle.permutations(raw, n),
                                jax.random.permutation(jax.random.split(raw)[0], n))


@pytest.mark.parametrize("seed", [0, 1, 2**31 + 7])
def test_host_threefry_bits_are_jax_random_bits(seed):
  # Numba's threefry-2x32 against XLA's, over counters past 2**16 and key words past 2**31.
  from jaxphys import _shuffle
  key = jax.random.fold_in(jax.random.key(seed), 12345)
  k0, k1 = np.asarray(jax.random.key_data(key))
  out = np.empty(70_001, np.uint32)
  _shuffle._threefry_bits(k0, k1, out)
  np.testing.assert_array_equal(out, jax.random.bits(key, out.shape, jnp.uint32))


@pytest.mark.parametrize("n", [2, 999, 70_000])
def test_host_shuffle_falls_back_for_other_keys(n):
  # rbg keys and non-partitionable threefry draw their bits with jax.random; the order is
  # still permutation's, key by key.
  from jaxphys import _shuffle
  for key in (jax.random.key(n, impl="rbg"), jax.random.key(n, impl="unsafe_rbg")):
    np.testing.assert_array_equal(_shuffle.permutations(key, n),
                                  jax.random.permutation(jax.random.split(key)[0], n))
  with jax.threefry_partitionable(False):
    keys = jax.random.split(jax.random.key(n), 2)
    expected = [jax.random.permutation(jax.random.split(k)[0], n) for k in keys]
    np.testing.assert_array_equal(_shuffle.permutations(keys, n), np.stack(expected))


def test_host_radix_sort_is_a_stable_argsort():
  # Ties (few distinct words) must keep the input order, as jax.random.permutation's sorts do.
  from jaxphys import _shuffle
  rng = np.random.default_rng(0)
  for words in (rng.integers(0, 5, 10_000), rng.integers(0, 2**32, 10_000),
                np.array([2**32 - 1, 0, 65536, 65535, 65536, 0])):
    words = words.astype(np.uint32)
    order = rng.permutation(len(words)).astype(np.int32)
    np.testing.assert_array_equal(_shuffle._sorted_by(words, order),
                                  order[np.argsort(words, kind="stable")])


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

  def record(epoch, state, history):
    live.append(len(jax.live_arrays()))
    resident.append(rss())

  state = jp.create_train_state(jax.random.key(0), model, tx, x)
  jp.fit(state, step, x, y, key=jax.random.key(1), epochs=400, batch_size=16, eval_step=evals,
         eval_data=(x, y), progress=False, callback=record)
  assert max(live[50:]) == live[50], (live[50], max(live[50:]))
  assert resident[-1] - resident[50] < 8 * 1024, (resident[50], resident[-1])  # KiB
