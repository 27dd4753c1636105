"""The CPU backend's oneDNN convolutions (jaxphys._onednn), against XLA's own convolution.

The reference is ``jax.lax.conv_general_dilated`` at ``precision="highest"``: values,
reverse- and forward-mode derivatives, ``vmap``, both operand layouts Flax and PyTorch
use, and the trainer's step with the rewrite against the same step without it.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax import lax
from jax._src.lax import convolution as _conv

import jaxphys as jp
from jaxphys import _mixed_products, _onednn, mixed_precision as mp

LAYOUTS = {"nhwc": ("NHWC", "HWIO", "NHWC"), "nchw": ("NCHW", "OIHW", "NCHW")}
PADDINGS = [((0, 0), (0, 0)), ((1, 1), (1, 1)), ((2, 0), (1, 2))]

needs_onednn = pytest.mark.skipif(not _onednn.enabled(), reason="oneDNN convolutions are off here")


def _rel(a, b) -> float:
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def _operands(layout, seed=0, x_shape=(4, 9, 8, 5), w_shape=(3, 3, 5, 7)):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal(x_shape).astype(np.float32)
  w = rng.standard_normal(w_shape).astype(np.float32)
  if layout == "nchw":
    x, w = x.transpose(0, 3, 1, 2), w.transpose(3, 2, 0, 1)
  x, w = jnp.asarray(x), jnp.asarray(w)
  return x, w, lax.conv_dimension_numbers(x.shape, w.shape, LAYOUTS[layout])


def _xla(x, w, pads, dn, **kw):
  return lax.conv_general_dilated(x, w, (1, 1), pads, dimension_numbers=dn, precision="highest", **kw)


def test_enabled_on_this_machine_and_the_compiled_step_calls_onednn():
  """On an x86-64 CPU with the checked jaxlib the rewrite is on, and the compiled program
  holds the custom call (not XLA's convolution) for the forward convolution."""
  import platform
  import jaxlib
  if platform.machine().lower() not in ("x86_64", "amd64") or not _onednn._jaxlib_checked():
    pytest.skip(f"oneDNN is only used on x86-64 with jaxlib {_onednn._CHECKED_JAXLIB}, here "
                f"{platform.machine()} and jaxlib {jaxlib.__version__}")
  assert _onednn.enabled()
  assert _onednn.enabled(jnp.bfloat16) == _onednn._cpu_has_bfloat16()  # its first-use check passes
  x, w, dn = _operands("nhwc")
  hlo = jax.jit(lambda a, b: _onednn.conv(a, b, PADDINGS[1], dn)).lower(x, w).compile().as_text()
  assert "__onednn$convolution" in hlo and "convolution(" not in hlo


@needs_onednn
@pytest.mark.parametrize("pads", PADDINGS)
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_values_and_both_derivatives_equal_xla(layout, pads):
  x, w, dn = _operands(layout)
  f = lambda a, b: jnp.sum(jnp.tanh(_onednn.conv(a, b, pads, dn)))
  r = lambda a, b: jnp.sum(jnp.tanh(_xla(a, b, pads, dn)))
  assert _rel(jax.jit(lambda a, b: _onednn.conv(a, b, pads, dn))(x, w), _xla(x, w, pads, dn)) <= 1e-6
  (v, g), (rv, rg) = jax.jit(jax.value_and_grad(f, (0, 1)))(x, w), jax.value_and_grad(r, (0, 1))(x, w)
  assert abs(float(v - rv)) <= 1e-5 * abs(float(rv))
  for got, want in zip(g, rg):
    assert got.shape == want.shape and _rel(got, want) <= 1e-5
  tangents = (jnp.cos(x), jnp.sin(w))  # forward mode: the primitive is bilinear
  assert _rel(jax.jvp(f, (x, w), tangents)[1], jax.jvp(r, (x, w), tangents)[1]) <= 1e-5
  second = jax.grad(lambda a: jnp.sum(jax.grad(f, 1)(a, w) ** 2))(x)  # reverse over reverse
  assert _rel(second, jax.grad(lambda a: jnp.sum(jax.grad(r, 1)(a, w) ** 2))(x)) <= 1e-4


@needs_onednn
def test_bfloat16_operands_give_the_float32_sum_of_their_products():
  """bfloat16 x bfloat16 products are exact in float32: the result is XLA's float32
  convolution of the same (rounded) operands, to the order of the sums."""
  x, w, dn = _operands("nhwc", seed=1)
  xb, wb = x.astype(jnp.bfloat16), w.astype(jnp.bfloat16)
  got = jax.jit(lambda a, b: _onednn.conv(a, b, PADDINGS[2], dn, jnp.float32))(xb, wb)
  want = _xla(xb.astype(jnp.float32), wb.astype(jnp.float32), PADDINGS[2], dn)
  assert got.dtype == jnp.float32 and _rel(got, want) <= 1e-6
  assert _rel(got, _xla(x, w, PADDINGS[2], dn)) > 1e-4  # the operands were rounded


@needs_onednn
@pytest.mark.parametrize("pads", PADDINGS)
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_bfloat16_kernel_gradient_is_a_onednn_convolution_with_float32_sums(layout, pads):
  """The kernel's cotangent from bfloat16 operands (the bfloat16 policy's backward
  product, float32 result) is one oneDNN convolution, and equals XLA's float32 kernel
  gradient of the same rounded operands to the order of the sums."""
  if not _onednn.enabled(jnp.bfloat16):
    pytest.skip("oneDNN convolutions with bfloat16 operands are off here")
  from jaxphys._mixed_products import _Float32Operand
  x, w, dn = _operands(layout, seed=3)
  xb = x.astype(jnp.bfloat16)
  g = jnp.cos(_xla(x, w, pads, dn)).astype(jnp.bfloat16)  # a cotangent of the output's shape
  ours = jax.jit(lambda a, c: _onednn.transpose_rhs(c, a, _Float32Operand(w), padding=pads, dimension_numbers=dn))
  hlo = ours.lower(xb, g).compile().as_text()
  assert "__onednn$convolution" in hlo and "convolution(" not in hlo
  got = ours(xb, g)
  want = jax.vjp(lambda b: _xla(xb.astype(jnp.float32), b, pads, dn), w)[1](g.astype(jnp.float32))[0]
  assert got.dtype == jnp.float32 and got.shape == w.shape and _rel(got, want) <= 1e-6


@needs_onednn
@pytest.mark.parametrize("axes", [(0, None), (None, 0), (0, 0), (2, 3)])
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_vmap_runs_through_onednn_and_equals_xla(layout, axes):
  """Mapped inputs with one kernel, one input with mapped kernels, both (K runs): equal
  to XLA's vmapped convolution, value and both gradients; the value with no XLA
  convolution (float32's kernel gradient is XLA's by design)."""
  x, w, dn = _operands(layout, seed=2)
  xs = jnp.stack([x, -x, 0.5 * x], axes[0]) if axes[0] is not None else x
  ws = jnp.stack([w, 2 * w, w[::-1]], axes[1]) if axes[1] is not None else w
  pads = PADDINGS[2]

  def loss(conv):
    return lambda a, b: jnp.sum(jnp.sin(jax.vmap(lambda p, q: conv(p, q, pads, dn), in_axes=axes)(a, b)))

  hlo = jax.jit(loss(_onednn.conv)).lower(xs, ws).compile().as_text()
  assert "__onednn$convolution" in hlo and "convolution(" not in hlo
  ours = jax.jit(jax.value_and_grad(loss(_onednn.conv), (0, 1)))
  (value, grads), (want, want_grads) = ours(xs, ws), jax.value_and_grad(loss(_xla), (0, 1))(xs, ws)
  assert _rel(value, want) <= 1e-5
  for got, ref in zip(grads, want_grads):
    assert got.shape == ref.shape and _rel(got, ref) <= 1e-5


@needs_onednn
def test_vmap_of_many_runs_falls_back_to_xla(monkeypatch):
  monkeypatch.setattr(_onednn, "_MAX_RUNS", 1)
  x, w, dn = _operands("nhwc", seed=2)
  ws = jnp.stack([w, 2 * w])
  f = jax.jit(jax.vmap(lambda b: _onednn.conv(x, b, PADDINGS[1], dn)))
  assert "__onednn$convolution" not in f.lower(ws).compile().as_text()
  got = f(ws)
  for k in range(2):
    assert _rel(got[k], _xla(x, ws[k], PADDINGS[1], dn)) <= 1e-6


@pytest.mark.parametrize("change, ok", [
    ({}, True),
    ({"padding": ((1, 1), (1, 1))}, True),
    ({"padding": ((3, 0), (0, 0))}, False),  # more than the kernel size less one
    ({"window_strides": (2, 2)}, False),
    ({"lhs_dilation": (2, 1)}, False),
    ({"rhs_dilation": (1, 2)}, False),
    ({"feature_group_count": 5}, False),
    ({"batch_group_count": 2}, False),
])
def test_supported_convolutions(change, ok):
  dn = lax.conv_dimension_numbers((4, 9, 8, 5), (3, 3, 5, 7), LAYOUTS["nhwc"])
  params = {"window_strides": (1, 1), "padding": ((0, 0), (0, 0)), "lhs_dilation": (1, 1),
            "rhs_dilation": (1, 1), "dimension_numbers": dn, "feature_group_count": 1,
            "batch_group_count": 1, **change}
  assert _onednn.supported(params, (4, 9, 8, 5), (3, 3, 5, 7)) is ok
  dn1 = lax.conv_dimension_numbers((4, 9, 5), (3, 5, 7), ("NWC", "WIO", "NWC"))
  assert not _onednn.supported({**params, "dimension_numbers": dn1, "padding": ((0, 0),)}, (4, 9, 5), (3, 5, 7))


def test_switched_off_by_the_environment_and_off_other_machines(monkeypatch):
  monkeypatch.setenv("JAXPHYS_ONEDNN", "0")
  assert not _onednn.enabled()
  for wrong in ("false", "off", "", "2"):  # a switch that reads as off must not leave it on
    monkeypatch.setenv("JAXPHYS_ONEDNN", wrong)
    with pytest.raises(ValueError, match=r"^JAXPHYS_ONEDNN must be 0 \(off\) or 1 \(on\), got"):
      _onednn.enabled()
  monkeypatch.delenv("JAXPHYS_ONEDNN")
  monkeypatch.setattr(_onednn.platform, "machine", lambda: "aarch64")
  assert not _onednn.enabled()
  monkeypatch.undo()
  import jaxlib
  monkeypatch.setattr(jaxlib, "__version__", "0.10.3")  # not checked yet: XLA's convolutions
  assert not _onednn._jaxlib_checked() and not _onednn.enabled()


@needs_onednn
@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_the_trainer_step_with_onednn_equals_the_step_without(monkeypatch, precision):
  """One SGD step of a small CNN (two VALID convolutions, non-zero biases), with the
  rewrite and with ``JAXPHYS_ONEDNN=0``: the same loss and gradients to float32
  rounding. In bfloat16 oneDNN rounds the convolutions' outputs to bfloat16, so the
  reference's XLA convolutions do too (else a rounded output that ties in a pooling
  window sends the gradient elsewhere: 0.7-34 % on the updates)."""
  model = jp.CNN(conv_features=(4, 6), dense_features=(8,), conv_dropout=0.0, dense_dropout=0.0)
  rng = np.random.default_rng(0)
  x = rng.normal(size=(16, 10, 10, 1)).astype(np.float32)
  batch = {"x": x, "y": rng.integers(0, 10, 16).astype(np.int32)}
  tx = optax.sgd(0.1)
  state = jp.create_train_state(jax.random.key(0), model, tx, x)
  biased = lambda path, v: v + 0.1 * jax.random.normal(jax.random.key(7), v.shape) if "bias" in str(path) else v
  state = state.replace(params=jax.tree_util.tree_map_with_path(biased, state.params))

  if not _onednn.enabled(precision):
    pytest.skip(f"oneDNN convolutions with {precision} operands are off here")

  def make():
    return jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx, precision=precision)

  # the rewrite happened: the step's program holds the oneDNN convolutions
  assert _onednn.conv_p.name in str(jax.make_jaxpr(make())(state, batch, jax.random.key(1)))
  new, m = make()(state, batch, jax.random.key(1))
  monkeypatch.setenv("JAXPHYS_ONEDNN", "0")
  apply = model.apply  # (a bound method is a new object at every access)
  assert mp.apply_in_precision(apply, "float32") is apply  # nothing rewritten
  assert _onednn.conv_p.name not in str(jax.make_jaxpr(make())(state, batch, jax.random.key(1)))
  if precision == "bfloat16":  # XLA's convolution, its output rounded as oneDNN's is
    xla = lambda x, y, preferred_element_type, **p: lax.conv_general_dilated(
        x, y, **p, preferred_element_type=preferred_element_type).astype(x.dtype).astype(preferred_element_type)
    monkeypatch.setattr(_mixed_products, "_conv_product", _mixed_products._product(
        _conv._conv_general_dilated_transpose_lhs, _conv._conv_general_dilated_transpose_rhs, xla))
  ref, rm = make()(state, batch, jax.random.key(1))
  tol = 1e-5 if precision == "float32" else 1e-4  # bfloat16: the sums' order may move a rounding
  assert abs(float(m["loss"] - rm["loss"])) <= tol * abs(float(rm["loss"]))
  before = jax.tree_util.tree_leaves(state.params)
  for p0, a, b in zip(before, jax.tree_util.tree_leaves(new.params), jax.tree_util.tree_leaves(ref.params)):
    assert _rel(a - p0, b - p0) <= tol  # the updates, i.e. the gradients


@needs_onednn
def test_second_order_derivatives_in_bfloat16_equal_the_xla_path(monkeypatch):
  """Reverse over reverse through the bfloat16 policy's convolutions (the input gradient
  of a bfloat16 x bfloat16 -> float32 convolution is differentiated again)."""
  if not _onednn.enabled(jnp.bfloat16):
    pytest.skip("oneDNN convolutions with bfloat16 operands are off here")
  model = jp.CNN(conv_features=(4,), dense_features=(8,), conv_dropout=0.0, dense_dropout=0.0)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 8, 8, 1)), jnp.float32)
  params = model.init(jax.random.key(0), x)["params"]

  def curvature(apply):
    f = lambda p, a: jnp.sum(apply({"params": p}, a, train=False))
    g = lambda a: sum(jnp.sum(leaf ** 2) for leaf in jax.tree_util.tree_leaves(jax.grad(f)(params, a)))
    return jax.grad(g)(x)

  ours = curvature(mp.apply_in_precision(model.apply, "bfloat16"))
  monkeypatch.setenv("JAXPHYS_ONEDNN", "0")
  assert _rel(ours, curvature(mp.apply_in_precision(model.apply, "bfloat16"))) <= 1e-2


def test_wrong_operands_are_an_error_not_a_crash():
  """oneDNN aborts the process on what it cannot build; ``conv`` refuses it first."""
  x, w, dn = _operands("nhwc")
  for a, b, pads in ((x.astype(jnp.float16), w.astype(jnp.float16), PADDINGS[0]),
                     (x.astype(jnp.float64) if jax.config.jax_enable_x64 else x.astype(jnp.int32), w, PADDINGS[0]),
                     (x, w, ((3, 0), (0, 0)))):  # padding beyond the kernel size less one
    with pytest.raises(ValueError, match="unsupported operands"):
      _onednn.conv(a, b, pads, dn)


@needs_onednn
@pytest.mark.parametrize("precision", ["float32", None])
def test_the_first_use_check_holds_when_first_asked_inside_jit(monkeypatch, precision):
  """``predict`` is jit-able: the check then runs during a trace, and must still pass
  (``None``: the default's own check, bfloat16's where the CPU has it)."""
  model = jp.CNN(conv_features=(4,), dense_features=(8,))
  x = jnp.ones((4, 8, 8, 1))
  state = jp.create_train_state(jax.random.key(0), model, optax.sgd(0.1), x)
  monkeypatch.setattr(_onednn, "_CHECKED", {})
  jax.jit(lambda s, a: jp.predict(model.apply, s, a, batch_size=4, precision=precision))(state, x)
  dtype = precision or ("bfloat16" if _onednn._cpu_has_bfloat16() else "float32")
  assert _onednn._CHECKED[dtype] is True and _onednn.enabled(dtype)


def test_bfloat16_needs_the_cpu_s_bfloat16_products(monkeypatch):
  monkeypatch.setattr(_onednn, "_CHECKED", {})
  monkeypatch.setattr(_onednn, "_cpu_has_bfloat16", lambda: False)
  assert not _onednn.enabled(jnp.bfloat16)
  assert _onednn.enabled(jnp.float32) == (_onednn._jaxlib_checked() and _onednn._works(jnp.float32))
