"""The mixed-precision policy (jaxphys.mixed_precision) through the trainer.

References are independent of the trainer: gradients from ``jax.grad`` of a float32 loss
written out here, dtypes read from the arrays and from the traced program. bfloat16 has
an 8-bit significand (relative spacing 2^-8 = 0.4 %), so a bfloat16 step's loss, logits and
output-layer gradients match float32 to about 1e-2 relative (norm of the difference over
the norm of the float32 value); see the gradient test for the deeper layers. The float32
policy changes nothing (1e-6).
"""

import math
import os
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxphys as jp
from jaxphys import _mixed_products, _onednn, mixed_precision as mp

BF16_RTOL = 2e-2   # ||bf16 - f32|| / ||f32||, per array
F32_RTOL = 1e-6


def _rel(a, b) -> float:
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def _data(shape, n=32, classes=10, seed=0):
  rng = np.random.default_rng(seed)
  return rng.normal(size=(n,) + shape).astype(np.float32), rng.integers(0, classes, n).astype(np.int32)


def _reference_grads(model, params, x, y):
  """float32 loss and gradients, written out without the trainer (no dropout)."""
  def loss(p):
    logits = model.apply({"params": p}, x, train=False)
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))
  return jax.value_and_grad(loss)(params)


def _step_grads(model, params, x, y, precision):
  """The trainer's loss and gradients: with SGD at rate 1, params - new params."""
  tx = optax.sgd(1.0)
  state = jp.create_train_state(jax.random.key(0), model, tx, x).replace(params=params)
  step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx, precision=precision)
  new, metrics = step(state, {"x": x, "y": y}, jax.random.key(1))
  return metrics["loss"], jax.tree_util.tree_map(lambda a, b: a - b, params, new.params), new


MODELS = {
    "mlp": (lambda: jp.MLP((64, 64, 10)), (8, 8, 1)),
    "cnn": (lambda: jp.CNN(conv_features=(8, 16), dense_features=(32,), conv_dropout=0.0,
                           dense_dropout=0.0), (12, 12, 1)),
}


def _flat(tree) -> np.ndarray:
  return np.concatenate([np.ravel(a) for a in jax.tree_util.tree_leaves(tree)])


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_bfloat16_step_matches_float32_loss_and_gradients(name, seed):
  make, shape = MODELS[name]
  model = make()
  x, y = _data(shape, seed=seed)
  params = model.init(jax.random.key(3 + seed), x[:1])["params"]
  ref_loss, ref_grads = _reference_grads(model, params, x, y)
  loss, grads, _ = _step_grads(model, params, x, y, "float32")  # the model as it is
  assert abs(float(loss) - float(ref_loss)) <= F32_RTOL * abs(float(ref_loss))
  # 1e-5: the trainer's gradient is read back as params - (params - g), rounded in float32
  assert _rel(_flat(grads), _flat(ref_grads)) <= 1e-5
  loss, grads, _ = _step_grads(model, params, x, y, "bfloat16")
  # the default is the named precision default_precision gives for the model, bit for bit
  jaxpr = jax.make_jaxpr(lambda p, v: model.apply({"params": p}, v))(params, x).jaxpr
  default = mp.default_precision(convolves=_mixed_products.onednn_convolves(jaxpr),
                                 wide_products=mp.has_wide_products(jaxpr))
  assert _mixed_products.onednn_convolves(jaxpr) == (name == "cnn" and _onednn.enabled())
  by_default = _step_grads(model, params, x, y, None)
  named = (loss, grads) if default == "bfloat16" else _step_grads(model, params, x, y, "float32")
  assert float(by_default[0]) == float(named[0]) and np.array_equal(_flat(by_default[1]), _flat(named[1]))
  assert loss.dtype == jnp.float32
  assert {g.dtype for g in jax.tree_util.tree_leaves(grads)} == {jnp.dtype(jnp.float32)}
  # Against float32: the loss to 1e-3; the output layer's gradients (the logits' error
  # alone) to 2e-2. Deeper layers' gradients at these random initial points differ by up
  # to ~10 % (2-9 % seen), as much as float32's own gradients at the bfloat16-rounded
  # parameters and inputs differ from those at the exact ones: the rounding of the values,
  # not the arithmetic. Every array still points the same way (cosine >= 0.99).
  assert abs(float(loss) - float(ref_loss)) <= 1e-3 * abs(float(ref_loss))
  last = sorted(grads)[-1]  # Dense_N, the output layer
  for k in grads[last]:
    assert _rel(grads[last][k], ref_grads[last][k]) <= BF16_RTOL, (last, k)
  for g, r in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(ref_grads)):
    g, r = np.ravel(g).astype(np.float64), np.ravel(r).astype(np.float64)
    assert g @ r / (np.linalg.norm(g) * np.linalg.norm(r)) >= 0.99
  assert 1e-4 < _rel(_flat(grads), _flat(ref_grads)) <= 0.1


def _round(a):
  """``a`` rounded to bfloat16, computed on in float32."""
  return jnp.asarray(a).astype(jnp.bfloat16).astype(jnp.float32)


def _conv(x, w):
  return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


@pytest.mark.parametrize("product, shapes", [
    (lambda x, w: x @ w, [(6, 5), (5, 3)]),
    (lambda x, w: x @ w, [(2, 4, 5), (5, 3)]),  # a dense layer on 2 x 4 rows
    (lambda x, w: x @ w, [(6, 1), (1, 3)]),  # one input feature
    (lambda x, w: jax.vmap(lambda v: x @ v)(w), [(6, 5), (2, 5, 3)]),  # 2 kernels
    (lambda x, w: jnp.einsum("bij,bjk->bik", x, w), [(2, 4, 5), (2, 5, 3)]),  # batch dimensions
    (_conv, [(2, 5, 6, 3), (3, 3, 3, 4)]),
])
@pytest.mark.parametrize("large", [False, True])
def test_a_product_takes_bfloat16_operands_and_returns_float32_both_ways(product, shapes, large,
                                                                        monkeypatch):
  """Forward: the float32 product of the rounded operands (a bfloat16 x bfloat16 product is
  exact in float32, so only the order of the sums differs); a convolution through oneDNN
  rounds it to bfloat16. Backward: the float32 products of the rounded cotangent with the
  rounded operands, by JAX's rules and (``large``, where the product is a dense layer's:
  the 2-D, 3-D and one-feature cases) by the large dense kernel gradient."""
  monkeypatch.setattr(_mixed_products, "_LARGE_DOT_FLOPS", 0 if large else float("inf"))
  rng = np.random.default_rng(0)
  x, w = (jnp.asarray(rng.normal(size=s).astype(np.float32)) for s in shapes)
  mixed = mp.apply_in_precision(product, "bfloat16")
  out, vjp = jax.vjp(mixed, x, w)
  ref, ref_vjp = jax.vjp(product, _round(x), _round(w))
  assert out.dtype == jnp.float32
  if product is _conv and _onednn.enabled(jnp.bfloat16):
    assert np.array_equal(out, _round(out))  # bfloat16 values: the sums rounded to nearest
    assert _rel(out, _round(ref)) <= 1e-4 < _rel(out, ref)  # (truncated: about 3e-3)
  else:
    assert _rel(out, ref) <= 1e-6
  assert _rel(out, product(x, w)) > 1e-4  # the operands were rounded
  g = jnp.asarray(rng.normal(size=out.shape).astype(np.float32))
  for got, want in zip(vjp(g), ref_vjp(_round(g))):
    assert got.dtype == jnp.float32 and _rel(got, want) <= 1e-6


@pytest.mark.parametrize("large", [False, True])
def test_kernel_gradients_of_vmapped_runs_are_each_runs_own(large, monkeypatch):
  """A sweep vmaps the whole step: the dense kernel gradient of K runs at once equals
  each run's alone, and the float32 product of the rounded operands."""
  monkeypatch.setattr(_mixed_products, "_LARGE_DOT_FLOPS", 0 if large else float("inf"))
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(7, 5)).astype(np.float32))
  w = jnp.asarray(rng.normal(size=(3, 5, 4)).astype(np.float32))
  g = jnp.asarray(rng.normal(size=(7, 4)).astype(np.float32))
  mixed = mp.apply_in_precision(lambda x, w: x @ w, "bfloat16")
  grad = jax.grad(lambda w: jnp.sum(mixed(x, w) * g))
  runs = jax.vmap(grad)(w)
  for k in range(3):
    assert _rel(runs[k], grad(w[k])) <= 1e-6
    assert _rel(runs[k], _round(x).T @ _round(g)) <= 1e-6


def _float32_copies(hlo: str, *shapes) -> list:
  """The instructions of compiled ``hlo``'s entry computation (parameters aside) that
  make float32 arrays of ``shapes`` in memory (fused computations work in registers)."""
  names = "|".join(",".join(map(str, s)) for s in shapes)
  return [line for line in hlo[hlo.index("\nENTRY"):].splitlines()
          if re.search(rf"= f32\[({names})\]", line) and "parameter(" not in line]


@pytest.mark.skipif(jax.default_backend() != "cpu" or not _onednn._jaxlib_checked(),
                    reason="XLA's CPU backend of the jaxlib versions checked here")
@pytest.mark.parametrize("rows, large", [(512, True), (64, False)])
def test_a_large_dense_kernel_gradient_reads_bfloat16_operands_on_cpu(rows, large):
  """JAX's rule writes a dense kernel's gradient as a product over the first axes of both
  operands, and XLA's CPU backend converts such a product's bfloat16 operands to float32
  first (checked here on that form). The rewrite's kernel gradient of a product of at
  least ``_LARGE_DOT_FLOPS`` keeps them bfloat16; a smaller one is JAX's form."""
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.normal(size=(rows, 256)).astype(np.float32))
  g = jnp.asarray(rng.normal(size=(rows, 384)).astype(np.float32))
  w = jnp.asarray(rng.normal(size=(256, 384)).astype(np.float32))
  assert (2 * rows * 256 * 384 >= _mixed_products._LARGE_DOT_FLOPS) == large
  bf16 = lambda a: a.astype(jnp.bfloat16)
  jax_form = lambda x, g: jax.lax.dot_general(bf16(x), bf16(g), (((0,), (0,)), ((), ())),
                                              preferred_element_type=jnp.float32)
  mixed = mp.apply_in_precision(lambda x, w: x @ w, "bfloat16")
  kernel_gradient = lambda x, g: jax.grad(lambda w: jnp.sum(mixed(x, w) * g))(w)
  compiled = [jax.jit(f).lower(x, g).compile().as_text() for f in (jax_form, kernel_gradient)]
  assert _float32_copies(compiled[0], (rows, 256), (256, rows))
  assert bool(_float32_copies(compiled[1], (rows, 256), (256, rows))) != large
  assert _rel(kernel_gradient(x, g), jax_form(x, g)) <= 1e-6


def test_a_large_product_puts_its_program_on_the_library_dots():
  """A product of ``_LARGE_DOT_FLOPS`` and its kernel gradient alone reach the trainer's
  threshold for YNNPACK's dots, where the large kernel gradient pays (BENCHMARKS.md)."""
  from jaxphys.train import _backend
  plan = lambda flops: _backend.options("cpu", convolutions=False, dot_flops=flops)
  assert plan(2 * _mixed_products._LARGE_DOT_FLOPS) == plan(math.inf)
  assert plan(0) != plan(math.inf) or not _backend._accepted("small")  # small programs differ


def test_only_products_are_rounded_the_rest_stays_float32():
  """An MLP written out by hand: its products from rounded operands, its biases and
  activations in float32."""
  model = jp.MLP((16, 16, 4), activation="tanh")
  x, _ = _data((8,), n=5)
  variables = model.init(jax.random.key(0), x)
  p = variables["params"]
  h = _round(x)
  for i in range(2):
    h = _round(jnp.tanh(h @ _round(p[f"Dense_{i}"]["kernel"]) + p[f"Dense_{i}"]["bias"]))
  want = h @ _round(p["Dense_2"]["kernel"]) + p["Dense_2"]["bias"]
  got = mp.apply_in_precision(model.apply, "bfloat16")(variables, x)
  assert got.dtype == jnp.float32 and _rel(got, want) <= 1e-6


def test_python_arguments_stay_python_and_other_products_are_left_alone():
  """Positional flags (``train``) reach the model as Python values; a product that asks for
  a bfloat16 result, or has bfloat16 operands, is not rewritten."""
  model = jp.MLP((16, 4), dropout=0.5)
  x, _ = _data((8,), n=6)
  v = model.init(jax.random.key(0), x)
  rngs = {"dropout": jax.random.key(1)}
  got = mp.apply_in_precision(model.apply, "bfloat16")(v, x, True, rngs=rngs)
  want = model.apply(v, x, True, rngs=rngs)
  assert got.dtype == jnp.float32 and 1e-6 < _rel(got, want) <= BF16_RTOL
  assert ((got == 0) == (want == 0)).all()  # the same dropout mask
  f = lambda a, b: (jax.lax.dot(a, a, preferred_element_type=jnp.bfloat16) + b, a @ b.astype(a.dtype))
  a, b = jnp.ones((4, 4)), jnp.ones((4, 4), jnp.bfloat16)
  out = _mixed_products.with_products(f, jnp.bfloat16)(a, b)  # (the policy casts outputs)
  assert out[0].dtype == jnp.bfloat16 and out[1].dtype == jnp.float32
  assert _product_dtypes(_mixed_products.with_products(f, jnp.bfloat16), a, b) == {
      "float32", "bfloat16"}  # the first product kept its float32 operands


def _product_dtypes(fn, *args) -> set:
  """dtypes of the operands of every matrix product and convolution ``fn`` traces."""
  found = set()

  def visit(jaxpr):
    for eqn in jaxpr.eqns:
      if eqn.primitive.name in ("dot_general", "conv_general_dilated", _onednn.conv_p.name):
        found.update(str(v.aval.dtype) for v in eqn.invars)
      for p in eqn.params.values():
        for sub in p if isinstance(p, (tuple, list)) else (p,):
          sub = getattr(sub, "jaxpr", sub)
          if hasattr(sub, "eqns"):
            visit(sub)

  visit(jax.make_jaxpr(fn)(*args).jaxpr)
  return found


@pytest.mark.parametrize("precision, want", [("bfloat16", "bfloat16"), ("float32", "float32"),
                                             (None, "the default")])
def test_products_and_convolutions_run_in_the_compute_dtype(precision, want):
  model = jp.CNN(conv_features=(4,), dense_features=(8,))
  x, y = _data((8, 8, 1), n=4)
  tx = optax.adam(1e-3)
  state = jp.create_train_state(jax.random.key(0), model, tx, x)
  step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx, precision=precision)
  batch = {"x": x, "y": y}
  want = {mp.default_precision(convolves=True) if precision is None else want}
  # forward and backward: every product of the step (the optimiser has none)
  assert _product_dtypes(step, state, batch, jax.random.key(1)) == want
  ev = jp.make_eval_step(model.apply, jp.softmax_cross_entropy, precision=precision)
  assert _product_dtypes(ev, state, batch) == want
  pred = lambda s, x: jp.predict(model.apply, s, x, batch_size=2, precision=precision)
  assert _product_dtypes(pred, state, x) == want


def test_params_and_optimizer_state_stay_float32_after_bfloat16_steps():
  model = jp.CNN(conv_features=(4,), dense_features=(8,))
  x, y = _data((8, 8, 1), n=16)
  tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-2))
  state = jp.create_train_state(jax.random.key(0), model, tx, x)
  step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx, precision="bfloat16")
  for i in range(3):
    state, metrics = step(state, {"x": x, "y": y}, jax.random.key(i))
  floats = [a for a in jax.tree_util.tree_leaves((state.params, state.opt_state))
            if jnp.issubdtype(a.dtype, jnp.floating)]
  assert floats and {a.dtype for a in floats} == {jnp.dtype(jnp.float32)}
  assert {v.dtype for v in metrics.values()} == {jnp.dtype(jnp.float32)}
  assert int(state.step) == 3


def test_the_loss_and_metrics_see_float32_logits():
  seen = {}

  def loss_fn(logits, labels):
    seen["loss"] = logits.dtype
    return jp.softmax_cross_entropy(logits, labels)

  def metrics_fn(logits, labels, weight):
    seen["metrics"] = logits.dtype
    return jp.train.classification_metrics(logits, labels, weight)

  model = jp.MLP((16, 10))
  x, y = _data((8,), n=8)
  tx = optax.sgd(0.1)
  state = jp.create_train_state(jax.random.key(0), model, tx, x)
  step = jp.make_train_step(model.apply, loss_fn, tx, metrics_fn=metrics_fn, precision="bfloat16")
  step(state, {"x": x, "y": y}, jax.random.key(1))
  assert seen == {"loss": jnp.float32, "metrics": jnp.float32}
  seen.clear()
  ev = jp.make_eval_step(model.apply, loss_fn, metrics_fn=metrics_fn, precision="bfloat16")
  ev(state, {"x": x, "y": y})
  assert seen == {"loss": jnp.float32, "metrics": jnp.float32}


def test_batchnorm_statistics_stay_float32_and_match_float32():
  model = jp.ResNet(stage_features=(4, 8), blocks=1)
  x, y = _data((28, 28, 1), n=8)
  tx = optax.adam(1e-3)
  state = jp.create_train_state(jax.random.key(0), model, tx, x)
  out = {}
  for precision in ("float32", "bfloat16"):
    step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx, precision=precision)
    s = state
    for i in range(2):
      s, _ = step(s, {"x": x, "y": y}, jax.random.key(i))
    out[precision] = s
  stats16, stats32 = out["bfloat16"].model_state, out["float32"].model_state
  assert jax.tree_util.tree_structure(stats16) == jax.tree_util.tree_structure(state.model_state)
  leaves = jax.tree_util.tree_leaves(stats16)
  assert leaves and {a.dtype for a in leaves} == {jnp.dtype(jnp.float32)}
  for a, b, before in zip(leaves, jax.tree_util.tree_leaves(stats32), jax.tree_util.tree_leaves(state.model_state)):
    assert not np.allclose(a, before)  # updated
    assert _rel(a, b) <= BF16_RTOL
  # evaluation with the running statistics, in bfloat16, close to float32
  ev = {p: jp.make_eval_step(model.apply, jp.softmax_cross_entropy, precision=p) for p in ("float32", "bfloat16")}
  l32 = float(ev["float32"](out["float32"], {"x": x, "y": y})["loss"])
  l16 = float(ev["bfloat16"](out["float32"], {"x": x, "y": y})["loss"])
  assert abs(l16 - l32) <= BF16_RTOL * abs(l32)


def test_predict_in_bfloat16_returns_float32_logits_close_to_float32():
  model = jp.CNN(conv_features=(4, 8), dense_features=(16,))
  x, _ = _data((10, 10, 1), n=7)
  state = jp.create_train_state(jax.random.key(0), model, optax.sgd(0.1), x)
  ref = np.asarray(jax.nn.softmax(model.apply({"params": state.params}, x)))
  got = jp.predict(model.apply, state, x, batch_size=3, precision="bfloat16")
  assert got.dtype == jnp.float32 and got.shape == (7, 10)
  assert _rel(jax.nn.softmax(got), ref) <= BF16_RTOL
  assert _rel(jp.predict(model.apply, state, x, batch_size=3, precision="float32"),
              model.apply({"params": state.params}, x)) <= F32_RTOL


@pytest.mark.slow
def test_fit_in_bfloat16_reaches_the_float32_accuracy():
  from sklearn.datasets import load_digits
  digits = load_digits()
  x = (digits.images / 16.0).astype(np.float32)[..., None]  # (1797, 8, 8, 1)
  y = digits.target.astype(np.int32)
  xt, yt, xv, yv = x[:1400], y[:1400], x[1400:], y[1400:]
  model = jp.CNN(conv_features=(8, 16), dense_features=(32,), conv_dropout=0.0, dense_dropout=0.0)
  acc = {}
  for precision in ("float32", "bfloat16"):
    for seed in (0, 1):
      tx = optax.adam(3e-3)
      state = jp.create_train_state(jax.random.key(seed), model, tx, xt)
      step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx, precision=precision)
      ev = jp.make_eval_step(model.apply, jp.softmax_cross_entropy, precision=precision)
      state, history = jp.fit(state, step, xt, yt, key=jax.random.key(seed + 10), epochs=12,
                              batch_size=64, eval_step=ev, eval_data=(xv, yv))
      assert {a.dtype for a in jax.tree_util.tree_leaves(state.params)} == {jnp.dtype(jnp.float32)}
      acc[precision, seed] = float(history["eval_accuracy"][-1])
  for seed in (0, 1):
    assert acc["float32", seed] > 0.85, acc
    # seed noise on 397 validation images is about 1-2 points; bfloat16 within 3
    assert abs(acc["bfloat16", seed] - acc["float32", seed]) <= 0.03, acc


@pytest.mark.parametrize("bad", ["float16", "bf16", "BFLOAT16", "", 16, jnp.bfloat16])
def test_a_wrong_precision_is_one_line_naming_the_argument(bad):
  model = jp.MLP((4, 2))
  x = np.ones((2, 3), np.float32)
  state = jp.create_train_state(jax.random.key(0), model, optax.sgd(0.1), x)
  calls = [lambda: jp.make_train_step(model.apply, jp.softmax_cross_entropy, optax.sgd(0.1), precision=bad),
           lambda: jp.make_eval_step(model.apply, jp.softmax_cross_entropy, precision=bad),
           lambda: jp.predict(model.apply, state, x, precision=bad),
           lambda: mp.get_policy(bad)]
  for call in calls:
    with pytest.raises(ValueError) as err:
      call()
    message = str(err.value)
    assert "\n" not in message and message.startswith("precision must be") and "'bfloat16'" in message


def test_policy_names_and_casts(monkeypatch):
  assert mp.PRECISIONS == ("float32", "bfloat16")
  p = mp.get_policy("bfloat16")
  assert (p.param_dtype, p.compute_dtype, p.output_dtype) == (jnp.float32, jnp.bfloat16, jnp.float32)
  assert mp.get_policy(p) is p and mp.get_policy(None).name == "float32"
  assert mp.get_policy(None, convolves=True).name == mp.default_precision(convolves=True)
  key = jax.random.key(0)
  tree = {"w": jnp.ones((2, 3)), "i": jnp.arange(3), "b": jnp.array([True]), "k": key, "s": 1.5}
  out = mp.cast_floating(tree, "bfloat16")
  assert out["w"].dtype == jnp.bfloat16 and out["w"].shape == (2, 3)
  assert out["i"].dtype == jnp.int32 and out["b"].dtype == jnp.bool_ and out["k"] is key and out["s"] == 1.5
  apply = jp.MLP((4, 2)).apply  # (a bound method is a new object at every access)
  monkeypatch.setenv("JAXPHYS_ONEDNN", "0")  # (else float32 rewrites convolutions on CPU)
  assert mp.apply_in_precision(apply, "float32") is apply


def _bfloat16_convolutions_here() -> bool:
  """Whether this machine is one where the default is bfloat16 for convolutional models
  (the CPU backend, with AVX-512 BF16, oneDNN's checked jaxlib), judged apart from
  default_precision."""
  return (jax.default_backend() == "cpu" and _onednn._cpu_has_bfloat16()
          and _onednn._jaxlib_checked() and os.environ.get("JAXPHYS_ONEDNN", "1") == "1")


def _cpu_with_bfloat16() -> bool:
  """Whether this is the CPU backend on a CPU with AVX-512 BF16 (read apart from the library's rule)."""
  if jax.default_backend() != "cpu" or not os.path.exists("/proc/cpuinfo"):
    return False
  with open("/proc/cpuinfo") as f:
    return " avx512_bf16" in f.read() and "ONEDNN_MAX_CPU_ISA" not in os.environ


def test_the_default_is_bfloat16_for_convolutional_models_where_the_cpu_computes_it(monkeypatch):
  want = "bfloat16" if _bfloat16_convolutions_here() else "float32"
  assert mp.default_precision(convolves=True) == want
  assert mp.default_precision(convolves=False) == mp.default_precision() == "float32"
  x, y = _data((8, 8, 1), n=8)
  tx = optax.adam(1e-3)
  cnn = jp.CNN(conv_features=(4,), dense_features=(8,))

  class Strided(nn.Module):  # its only convolution is not oneDNN's (stride 2): float32
    @nn.compact
    def __call__(self, x, train=False):
      return nn.Dense(10)(nn.Conv(4, (3, 3), strides=2)(x).reshape(len(x), -1))

  for model, expected in ((cnn, want), (Strided(), "float32"), (jp.MLP((8, 10)), "float32")):
    state = jp.create_train_state(jax.random.key(0), model, tx, x)
    step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx)
    # None: decided when traced, wherever bfloat16 can be chosen (convolutions or wide products)
    assert step.precision == (None if _cpu_with_bfloat16() else "float32")
    epoch = jp.make_train_epoch(step, x, y, batch_size=4)
    epoch(state, jax.random.key(1), 0)
    assert step.precision == epoch.compilation["precision"] == expected, model
    ev = jp.make_eval_step(model.apply, jp.softmax_cross_entropy)
    ev(state, {"x": x, "y": y})
    assert ev.precision == expected
    by_default = lambda s, v: jp.predict(model.apply, s, v, precision=None)
    assert _product_dtypes(by_default, state, x) == {expected}
    # predict itself computes in float32 unless given
    assert _product_dtypes(lambda s, v: jp.predict(model.apply, s, v), state, x) == {"float32"}
  monkeypatch.setenv("JAXPHYS_ONEDNN", "0")  # no oneDNN convolutions: float32 throughout
  assert mp.default_precision(convolves=True) == "float32"
  step = jp.make_train_step(cnn.apply, jp.softmax_cross_entropy, tx)
  step(jp.create_train_state(jax.random.key(0), cnn, tx, x), {"x": x, "y": y}, jax.random.key(1))
  assert step.precision == "float32"


def _forward(model, shape, rows, vmapped=None):
  """The jaxpr of ``model``'s forward pass on ``rows`` examples of ``shape``; ``vmapped``
  over 3 copies of the ``"params"`` or of the ``"inputs"``, to count batched products
  (the trainer's rule sees one run of a vmapped sweep: its trace inside ``vmap``)."""
  x = jnp.ones((rows,) + shape)
  v = model.init(jax.random.key(0), x[:1])
  three = lambda tree: jax.tree_util.tree_map(lambda a: jnp.stack([a] * 3), tree)
  if vmapped == "params":
    return jax.make_jaxpr(jax.vmap(model.apply, in_axes=(0, None)))(three(v), x).jaxpr
  if vmapped == "inputs":
    return jax.make_jaxpr(jax.vmap(model.apply, in_axes=(None, 0)))(v, three(x)).jaxpr
  return jax.make_jaxpr(model.apply)(v, x).jaxpr


SUSY_NET, MNIST, CNN = jp.MLP((300,) * 4 + (1,)), (784,), jp.CNN()


@pytest.mark.parametrize("model, shape, rows, want", [
    (jp.MLP((512, 512, 10)), MNIST, 128, True),   # 171 MFLOP, 99.2 % of it wide
    (jp.MLP((512, 512, 10)), MNIST, 64, False),   # 64 rows
    (SUSY_NET, (18,), 256, True),
    (SUSY_NET, (18,), 100, False),                # 100 rows
    (jp.MLP((128, 10)), MNIST, 4096, False),      # 128 output features
    (jp.SoftmaxRegression(10), MNIST, 4096, False),
    (CNN, (28, 28, 1), 128, False),               # no wide product (128 output features)
    (jp.MLP((300, 100, 5000)), (300,), 2048, False),  # 0.37 GFLOP wide, 2.17 narrow: not half
    (jp.MLP((300, 100, 300)), (300,), 2048, True),    # 0.37 + 0.37 wide, 0.25 narrow
    (jp.MLP((256,)), (256,), 763, True),          # 2 * 763 * 256 * 256 = 1.00008e8 FLOPs
    (jp.MLP((256,)), (256,), 762, False),         # 0.99877e8
    (jp.MLP((255,)), (4096,), 4096, False),       # 255 output features
    (jp.MLP((4096,)), (255,), 4096, False),       # 255 contracted features
    (jp.MLP((4096,)), (4096,), 127, False),       # 127 rows, 4.3 GFLOP
    (jp.MLP((4096,)), (4096,), 128, True),
])
def test_wide_products_are_rows_features_and_flops_past_the_measured_limits(model, shape, rows, want):
  assert mp.has_wide_products(_forward(model, shape, rows)) is want


def test_has_wide_products_takes_a_closed_jaxpr_and_names_a_wrong_argument():
  mlp = jp.MLP((512, 512, 10))
  v = mlp.init(jax.random.key(0), jnp.ones((1, 784)))
  assert mp.has_wide_products(jax.make_jaxpr(mlp.apply)(v, jnp.ones((128, 784)))) is True
  with pytest.raises(TypeError, match=r"^jaxpr must be a jaxpr from jax.make_jaxpr, got method$"):
    mp.has_wide_products(mlp.apply)


def test_product_shapes_count_the_flops_of_the_closed_forms():
  flops = lambda jaxpr: sum(2 * b * m * k * n for _, b, m, k, n in _mixed_products.product_shapes(jaxpr))
  assert flops(_forward(jp.MLP((512, 512, 10)), MNIST, 128)) == 2 * 128 * (784 * 512 + 512 * 512 + 512 * 10)
  # the course CNN: 3x3 convolutions 1 -> 32 (26 x 26 out) and 32 -> 64 (24 x 24), then
  # 12 * 12 * 64 -> 128 -> 10
  conv = 26 * 26 * 32 * 9 * 1 + 24 * 24 * 64 * 9 * 32
  assert flops(_forward(CNN, (28, 28, 1), 8)) == 2 * 8 * (conv + 12 * 12 * 64 * 128 + 128 * 10)
  # vmapped over parameters, the input shared: one product for the first layer, batched ones after
  shapes = _mixed_products.product_shapes(_forward(jp.MLP((512, 512, 10)), MNIST, 128, "params"))
  assert [s[1:] for s in shapes] == [(1, 128, 784, 3 * 512), (3, 128, 512, 512), (3, 128, 512, 10)]
  # vmapped over inputs, the parameters shared: the rows of the three batches together
  shapes = _mixed_products.product_shapes(_forward(jp.MLP((512, 512, 10)), MNIST, 128, "inputs"))
  assert [s[1:] for s in shapes][0] == (1, 3 * 128, 784, 512)


def test_the_default_is_bfloat16_for_wide_products_where_the_cpu_computes_them(monkeypatch):
  """A wide model's step, eval step and predict(precision=None) take bfloat16 operands on
  a CPU with AVX-512 BF16 (oneDNN or not), float32 elsewhere, and float32 at a batch too
  small: the choice is made for each traced program."""
  want = "bfloat16" if jax.default_backend() == "cpu" and _onednn._cpu_has_bfloat16() else "float32"
  assert mp.default_precision(wide_products=True) == want
  model, tx = jp.MLP((256, 256)), optax.adam(1e-3)
  x, y = _data((256,), n=1024, classes=256)
  for onednn in ("1", "0"):
    monkeypatch.setenv("JAXPHYS_ONEDNN", onednn)
    state = jp.create_train_state(jax.random.key(0), model, tx, x)
    step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx)
    for rows, expected in ((1024, want), (64, "float32")):
      step(state, {"x": x[:rows], "y": y[:rows]}, jax.random.key(1))
      assert step.precision == expected, (onednn, rows)
      by_default = lambda s, v: jp.predict(model.apply, s, v, batch_size=rows, precision=None)
      assert _product_dtypes(by_default, state, x[:rows]) == {expected}
    ev = jp.make_eval_step(model.apply, jp.softmax_cross_entropy)
    ev(state, {"x": x, "y": y})
    assert ev.precision == want


@pytest.mark.parametrize("name", ["convolves", "wide_products"])
def test_the_default_rule_takes_bools_only(name):
  with pytest.raises(TypeError, match=rf"^{name} must be a bool, got ClosedJaxpr$"):
    mp.default_precision(**{name: jax.make_jaxpr(jnp.sin)(1.0)})
  with pytest.raises(TypeError, match=rf"^{name} must be a bool, got str$"):
    mp.get_policy(None, **{name: "no"})
  assert mp.default_precision(**{name: np.bool_(False)}) == "float32"


def test_without_native_bfloat16_the_default_is_float32_and_nothing_is_traced_for_it(monkeypatch):
  monkeypatch.setattr(_onednn, "_cpu_has_bfloat16", lambda: False)
  monkeypatch.setattr(mp, "has_wide_products", lambda jaxpr: pytest.fail("traced for the rule"))
  assert mp.default_precision(convolves=True, wide_products=True) == "float32"
  model, tx = jp.MLP((256, 256)), optax.adam(1e-3)
  x, y = _data((256,), n=1024, classes=256)
  step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx)
  assert step.precision == "float32"  # known before any trace
  step(jp.create_train_state(jax.random.key(0), model, tx, x), {"x": x, "y": y}, jax.random.key(1))
  assert step.precision == "float32"
