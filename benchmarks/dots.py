"""Where ``fit`` puts a model's matrix products on CPU: YNNPACK or XLA's own code; and
whether bfloat16 operands speed them up.

XLA's CPU backend hands dots to YNNPACK by default. ``fit`` keeps them there unless a
program has no convolution and under ``jaxphys.train._SMALL_DOT_FLOPS`` (1e8) FLOPs of
matrix products per step; then they go to XLA's own code (``jaxphys.train._backend``).
``--compare dots`` (the default) trains each model both ways (the backend's choice forced
through ``jaxphys.train._backend.plan``), alternated in one process, and prints the
paired ratio of epoch times, the model's dot FLOPs per step and which way ``fit`` picks.
``--compare precision`` trains each model with ``precision="float32"`` and
``precision="bfloat16"`` instead (same options as ``fit`` picks), and prints the step's
dot FLOPs and the precision ``precision=None`` picks
(:func:`jaxphys.mixed_precision.has_wide_products` of the forward pass).

    python benchmarks/dots.py [--compare dots|precision] [--cases softmax mlp_100 ...]
        [--repeats 4] [--epochs 2]

Each repeat trains one ``fit`` run per setting (Adam, 1e-3; one untimed epoch, then
``--epochs`` timed, median), on random data of the case's shape.
"""

from __future__ import annotations

import argparse
import math
import statistics

# name: (hidden and output features, activation, input shape, batch, examples, vmapped runs)
CASES = {
    "softmax": ((10,), None, (28, 28, 1), 128, 20_000, None),
    "softmax_x8": ((10,), None, (28, 28, 1), 128, 10_000, 8),
    "susy_64_64": ((64, 64, 1), "relu", (18,), 128, 100_000, None),
    "mlp_32_32": ((32, 32, 10), "relu", (28, 28, 1), 128, 20_000, None),
    "mlp_100": ((100, 10), "relu", (28, 28, 1), 128, 20_000, None),
    "susy_4x300_b32": ((300, 300, 300, 300, 1), "tanh", (18,), 32, 16_000, None),
    "mlp_200": ((200, 10), "relu", (28, 28, 1), 128, 20_000, None),
    "mlp_256_256": ((256, 256, 10), "relu", (28, 28, 1), 128, 20_000, None),
    "susy_4x300_b100": ((300, 300, 300, 300, 1), "tanh", (18,), 100, 50_000, None),
    "mlp_512_512": ((512, 512, 10), "relu", (28, 28, 1), 128, 20_000, None),
    "susy_4x300_b1024": ((300, 300, 300, 300, 1), "tanh", (18,), 1024, 100_000, None),
    "mlp_512_512_x4": ((512, 512, 10), "relu", (28, 28, 1), 128, 10_000, 4),
    # larger batches
    "softmax_b1024": ((10,), None, (28, 28, 1), 1024, 61_440, None),
    "mlp_100_b1024": ((100, 10), "relu", (28, 28, 1), 1024, 40_960, None),
    "susy_4x300_b256": ((300, 300, 300, 300, 1), "tanh", (18,), 256, 100_000, None),
    "susy_4x300_b512": ((300, 300, 300, 300, 1), "tanh", (18,), 512, 100_000, None),
    "mlp_512_512_b1024": ((512, 512, 10), "relu", (28, 28, 1), 1024, 40_960, None),
    # at the limits of the default precision's wide products
    "mlp_512_512_b64": ((512, 512, 10), "relu", (28, 28, 1), 64, 20_000, None),
    "mlp_256_256_b100": ((256, 256, 10), "relu", (28, 28, 1), 100, 20_000, None),
    "mlp_128": ((128, 10), "relu", (28, 28, 1), 128, 20_000, None),
    "mlp_128_b1024": ((128, 10), "relu", (28, 28, 1), 1024, 40_960, None),
    "susy_4x300_b128": ((300, 300, 300, 300, 1), "tanh", (18,), 128, 60_000, None),
}


def _setup(case, seed: int = 0, precision=None):
  """The case's model, step, initial state and data (``precision`` of the step)."""
  import jax
  import numpy as np
  import optax
  import jaxphys as jp

  features, activation, shape, batch, n, runs = CASES[case]
  binary = features[-1] == 1
  model = (jp.SoftmaxRegression(features[-1]) if activation is None
           else jp.MLP(features, activation=activation))
  rng = np.random.default_rng(seed)
  x = rng.random((n // batch * batch,) + shape, dtype=np.float32)
  y = rng.integers(0, 2 if binary else features[-1], len(x)).astype(np.int32)
  tx = optax.adam(1e-3)
  step = jp.make_train_step(model.apply, jp.binary_cross_entropy if binary else jp.softmax_cross_entropy, tx,
                            precision=precision)
  if runs is None:
    state = jp.create_train_state(jax.random.key(0), model, tx, x)
  else:
    state = jp.create_train_states(jax.random.split(jax.random.key(0), runs), model, tx, x)
  return step, state, x, y, batch


def _traced(case, precision=None):
  """The case's step (of ``precision``) and the jaxpr of one training step on one batch."""
  import jax

  step, state, x, y, batch = _setup(case, precision=precision)
  batch_data = {"x": x[:batch], "y": y[:batch]}
  if CASES[case][-1] is None:
    return step, jax.make_jaxpr(step)(state, batch_data, jax.random.key(0))
  keys = jax.random.split(jax.random.key(0), CASES[case][-1])
  return step, jax.make_jaxpr(jax.vmap(step, in_axes=(0, None, 0)))(state, batch_data, keys)


def dot_flops(case) -> int:
  """FLOPs of the matrix products of one training step, as ``fit`` counts them."""
  from jaxphys.train import _backend as jt

  return jt._dot_flops(_traced(case, "float32")[1].jaxpr)


def default_precision(case) -> str:
  """The precision ``precision=None`` picks for the case's step (at its first trace)."""
  return _traced(case)[0].precision


def epoch_seconds(case, setting: str, epochs: int) -> float:
  """Median ``fit`` epoch with the dots on ``"ynnpack"`` or ``"xla"`` (the backend's
  options of a large or of a small program, forced), or with the step's precision
  ``"float32"`` or ``"bfloat16"`` (the backend's options as ``fit`` picks them)."""
  import jax
  import jaxphys as jp
  from jaxphys.train import _backend

  forced = setting in ("ynnpack", "xla")
  step, state, x, y, batch = _setup(case, precision="float32" if forced else setting)
  real = _backend.plan
  if forced:
    options = _backend.options(jax.default_backend(), convolutions=False,
                               dot_flops=0 if setting == "xla" else math.inf)
    _backend.plan = lambda jaxpr: (real(jaxpr)[0], options)  # fit's loop, these options
  try:
    _, hist = jp.fit(state, step, x, y, key=jax.random.key(1), epochs=epochs + 1, batch_size=batch)
  finally:
    _backend.plan = real
  return statistics.median(hist["epoch_seconds"][1:])


def main(argv=None) -> dict:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--compare", choices=["dots", "precision"], default="dots")
  ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
  ap.add_argument("--repeats", type=int, default=4, help="alternated fit runs per setting")
  ap.add_argument("--epochs", type=int, default=2, help="timed epochs per fit run")
  args = ap.parse_args(argv)
  import os
  import jax
  from jaxphys.train import _backend as jt
  opts = lambda flops: jt.options(jax.default_backend(), convolutions=False, dot_flops=flops)

  if jax.default_backend() != "cpu" or opts(0) == opts(math.inf):
    raise SystemExit("dots.py: needs XLA's CPU backend with YNNPACK fusions")
  first, second = ("ynnpack", "xla") if args.compare == "dots" else ("float32", "bfloat16")
  print(f"jax {jax.__version__}, {os.cpu_count()} CPUs; median epoch of {args.epochs}, "
        f"{args.repeats} alternated fit runs per setting; fit picks XLA's dots below "
        f"{jt._SMALL_DOT_FLOPS:.0e} FLOPs per step")
  out = {}
  for case in args.cases:
    flops = dot_flops(case)
    times = {first: [], second: []}
    for _ in range(args.repeats):
      for setting in times:
        times[setting].append(epoch_seconds(case, setting, args.epochs))
    ratios = [a / b for a, b in zip(times[first], times[second])]
    if args.compare == "dots":
      picks = "fit picks " + ("xla" if opts(flops) == opts(0) else "ynnpack")
    else:
      picks = "precision=None picks " + default_precision(case)
    out[case] = {"dot_flops": flops, "picks": picks, "ratio": statistics.median(ratios), **times}
    print(f"  {case:18s} {flops / 1e6:8.1f} MFLOP/step  {first} {1e3 * statistics.median(times[first]):7.1f} ms"
          f"  {second} {1e3 * statistics.median(times[second]):7.1f} ms  {first} / {second} "
          f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})  {picks}", flush=True)
  return out


if __name__ == "__main__":
  main()
