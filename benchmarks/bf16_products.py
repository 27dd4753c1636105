"""Whether bfloat16 operands with float32 accumulation speed up the course's products on
this backend (issue 24): float32 products against "native" mixed products, in one run.

A mixed product casts both operands to bfloat16 and asks XLA for a float32 result
(``preferred_element_type``); its custom VJP does the same for the two backward products
(the cotangent cast to bfloat16): what ``precision="bfloat16"``
(:mod:`jaxphys.mixed_precision`) does to every product of a model, here layer kind by
layer kind. Cases, each trained by ``jaxphys.fit`` (Adam, random data of the case's
shape), the variants taking turns ``--repeats`` times, median epoch:

* ``susy``: the SUSY deep network (18 -> 4 x 300 tanh -> 1), batches of 1024 and 100,
  its Dense layers float32 or mixed;
* ``cnn``: the course CNN (Keras mnist_cnn), batch 128, float32, mixed convolutions, or
  mixed convolutions and Dense layers.

    python benchmarks/bf16_products.py [--cases susy cnn] [--repeats 3]

The products are the library's own (``jaxphys._mixed_products``), placed layer by layer
through Flax's hooks instead of rewriting the whole model.
"""

from __future__ import annotations

import argparse
import statistics

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxphys as jp
from jaxphys import _layers, _mixed_products

BF16 = jnp.bfloat16


def mixed_dot_general(lhs, rhs, dims, precision=None, preferred_element_type=None, **_):
  """``flax.linen.Dense(dot_general=...)``: the product ``precision="bfloat16"`` uses."""
  return _mixed_products._dot(lhs, rhs, BF16, (("dimension_numbers", dims),))


def mixed_conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                               rhs_dilation=None, dimension_numbers=None,
                               feature_group_count=1, precision=None, **_):
  """``flax.linen.Conv(conv_general_dilated=...)``: the convolution ``precision="bfloat16"``
  uses, its parameters in the form a traced ``conv_general_dilated`` has them."""
  dn = jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
  n = len(window_strides)
  if isinstance(padding, str):
    padding = jax.lax.padtype_to_pads([lhs.shape[d] for d in dn.lhs_spec[2:]],
                                      [rhs.shape[d] for d in dn.rhs_spec[2:]], window_strides, padding)
  params = dict(window_strides=tuple(window_strides), padding=tuple(map(tuple, padding)),
                lhs_dilation=tuple(lhs_dilation or (1,) * n), rhs_dilation=tuple(rhs_dilation or (1,) * n),
                dimension_numbers=dn, feature_group_count=feature_group_count, batch_group_count=1)
  return _mixed_products._conv_product(lhs, rhs, BF16, tuple(params.items()))


class SusyNet(nn.Module):
  mixed: bool = False

  @nn.compact
  def __call__(self, x, train: bool = False):
    kw = dict(dot_general=mixed_dot_general) if self.mixed else {}
    for _ in range(4):
      x = jnp.tanh(nn.Dense(300, **kw)(x))
    return nn.Dense(1)(x)[:, 0]


class CourseCNN(nn.Module):
  conv: bool = False
  dense: bool = False

  @nn.compact
  def __call__(self, x, train: bool = False):
    ck = dict(conv_general_dilated=mixed_conv_general_dilated) if self.conv else {}
    dk = dict(dot_general=mixed_dot_general) if self.dense else {}
    x = nn.relu(nn.Conv(32, (3, 3), padding="VALID", **ck)(x))
    x = nn.relu(nn.Conv(64, (3, 3), padding="VALID", **ck)(x))
    x = _layers.Dropout(0.25, deterministic=not train)(_layers.pool2d(x, 2, "max"))
    x = nn.relu(nn.Dense(128, **dk)(x.reshape(x.shape[0], -1)))
    return nn.Dense(10, **dk)(_layers.Dropout(0.5, deterministic=not train)(x))


def epoch_seconds(model, loss, x, y, batch: int) -> float:
  tx = optax.adam(1e-3)
  state = jp.create_train_state(jax.random.key(0), model, tx, x[:1])
  step = jp.make_train_step(model.apply, loss, tx)
  _, hist = jp.fit(state, step, x, y, key=jax.random.key(1), epochs=3, batch_size=batch, callbacks=[])
  return statistics.median(hist["epoch_seconds"][1:])


def cases(names):
  rng = np.random.default_rng(0)
  if "susy" in names:
    events, labels = rng.normal(size=(102_400, 18)).astype(np.float32), rng.integers(0, 2, 102_400)
    for batch in (1024, 100):
      yield f"susy b{batch}", {f"{v} Dense": (SusyNet(v == "mixed"), jp.binary_cross_entropy, events,
                                              labels, batch) for v in ("float32", "mixed")}
  if "cnn" in names:
    images, labels = rng.random((1280, 28, 28, 1), np.float32), rng.integers(0, 10, 1280)
    yield "cnn b128", {name: (model, jp.softmax_cross_entropy, images, labels, 128) for name, model in
                       [("float32", CourseCNN()), ("mixed Conv", CourseCNN(conv=True)),
                        ("mixed Conv + Dense", CourseCNN(conv=True, dense=True))]}


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--cases", nargs="+", default=["susy", "cnn"], choices=["susy", "cnn"])
  ap.add_argument("--repeats", type=int, default=3)
  args = ap.parse_args()
  print(f"jax {jax.__version__} on {jax.default_backend()}, {jax.device_count()} device(s)")
  for case, variants in cases(args.cases):
    times = {name: [] for name in variants}
    for _ in range(args.repeats):
      for name, (model, loss, x, y, batch) in variants.items():
        times[name].append(epoch_seconds(model, loss, x, y, batch))
    base = statistics.median(next(iter(times.values())))
    for name, t in times.items():
      med, n = statistics.median(t), len(variants[name][2])
      print(f"{case:9s} {name:20s} {n / med:>10,.0f} examples/s "
            f"({min(t):.3f}-{max(t):.3f} s per epoch), {base / med:.2f}x float32")


if __name__ == "__main__":
  main()
