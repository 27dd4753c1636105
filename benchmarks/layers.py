"""Whether jaxphys' own pooling gradient and dropout mask earn their place: the course CNN
trained by ``fit`` with each, against Flax's ``max_pool`` and ``Dropout``, in one run.

Variants (the course CNN, batch 128, Adam, 1,280 MNIST-shaped images): ``jaxphys``
(``_layers.pool2d``, max-pooling as reshape + max with an elementwise gradient, and
``_layers.Dropout``, masks from 1-8 random bits per element), ``flax pool`` (Flax's
``max_pool``, whose gradient is XLA's select-and-scatter) and ``flax dropout``
(``flax.linen.Dropout``). They take turns ``--repeats`` times; each reports ``fit``'s
median epoch.

    python benchmarks/layers.py [--repeats 3] [--epochs 3]
"""

from __future__ import annotations

import argparse
import statistics

import flax.linen as nn
import jax
import numpy as np
import optax

import jaxphys as jp
from jaxphys import _layers, models


def _flax_pool(x, size, kind):
  pool = nn.max_pool if kind == "max" else nn.avg_pool
  return pool(x, (size, size), strides=(size, size))


VARIANTS = {
    "jaxphys": (_layers.pool2d, _layers.Dropout),
    "flax pool": (_flax_pool, _layers.Dropout),
    "flax dropout": (_layers.pool2d, nn.Dropout),
}


def epoch_seconds(variant: str, x, y, epochs: int) -> float:
  models.pool2d, models.Dropout = VARIANTS[variant]
  model, tx = jp.CNN(), optax.adam(1e-3)
  state = jp.create_train_state(jax.random.key(0), model, tx, x)
  step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx)
  _, hist = jp.fit(state, step, x, y, key=jax.random.key(1), epochs=epochs + 1, batch_size=128)
  return statistics.median(hist["epoch_seconds"][1:])


def main() -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--epochs", type=int, default=3)
  args = parser.parse_args()
  rng = np.random.default_rng(0)
  x = rng.random((1280, 28, 28, 1), dtype=np.float32)
  y = rng.integers(0, 10, 1280)
  saved = models.pool2d, models.Dropout
  times = {v: [] for v in VARIANTS}
  try:
    for _ in range(args.repeats):
      for v in VARIANTS:
        times[v].append(epoch_seconds(v, x, y, args.epochs))
  finally:
    models.pool2d, models.Dropout = saved
  out = {v: 1e3 * statistics.median(t) for v, t in times.items()}
  for v, ms in out.items():
    print(f"{v:13s} median epoch {ms:7.0f} ms ({1e3 * min(times[v]):.0f}-{1e3 * max(times[v]):.0f}), "
          f"{out['jaxphys'] / ms:.2f}x jaxphys' speed")
  return out


if __name__ == "__main__":
  main()
