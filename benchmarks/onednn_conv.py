"""The CPU backend's oneDNN convolutions (``jaxphys._onednn``) against XLA's, in one run.

    python benchmarks/onednn_conv.py [--rounds 2] [--epochs 3] [--repeats 10]

1. The course CNN's two convolutions piece by piece, batch 128: the forward convolution,
   the input gradient and the kernel gradient by XLA and by oneDNN
   (``_onednn.kernel_gradient``, which the trainer uses for bfloat16 operands only),
   float32 and bfloat16 operands with float32 results; median milliseconds of
   ``--repeats`` calls of each compiled piece, under the XLA options ``fit`` uses for
   convolutional programs.
2. ``fit`` training the course CNN (``benchmarks/training.py``'s case: 6,400 synthetic
   MNIST-shaped images, batch 128, Adam) with ``JAXPHYS_ONEDNN=0`` (XLA's convolutions)
   and ``1``, each precision, ``--rounds`` alternating rounds; images per second over the
   median epoch and the ratio oneDNN / XLA.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

SHAPES = {"conv1": ((128, 28, 28, 1), (3, 3, 1, 32)), "conv2": ((128, 26, 26, 32), (3, 3, 32, 64))}


def _median_ms(fn, args, options, repeats: int) -> float:
  """Median milliseconds of ``repeats`` calls of ``fn`` compiled with ``options``."""
  import jax
  import training as T
  compiled = jax.jit(fn).lower(*args).compile(options)
  return statistics.median(T._timed_epochs(lambda: jax.block_until_ready(compiled(*args)), repeats)) * 1e3


def pieces(repeats: int) -> None:
  import jax
  import jax.numpy as jnp
  from jax import lax
  from jaxphys import _onednn
  from jaxphys._mixed_products import _Float32Operand
  from jaxphys.train import _backend

  options = _backend.options("cpu", convolutions=True, dot_flops=0)
  _backend.keep_freed_memory()  # as the trainer runs
  f32 = jnp.float32
  for name, (xs, ws) in SHAPES.items():
    x, w = jax.random.normal(jax.random.key(0), xs), 0.1 * jax.random.normal(jax.random.key(1), ws)
    dn = lax.conv_dimension_numbers(xs, ws, ("NHWC", "HWIO", "NHWC"))
    pads = ((0, 0), (0, 0))
    g = jnp.ones(lax.conv_general_dilated(x, w, (1, 1), pads, dimension_numbers=dn).shape)
    flops = 2 * g.size * ws[0] * ws[1] * ws[2]
    for dtype in (f32, jnp.bfloat16):
      a, b, c = x.astype(dtype), w.astype(dtype), g.astype(dtype)
      xla = lambda p, q: lax.conv_general_dilated(p, q, (1, 1), pads, dimension_numbers=dn, preferred_element_type=f32)
      ours = lambda p, q: _onednn.conv(p, q, pads, dn, f32)
      dx_xla = lambda q, r: jax.vjp(lambda p: xla(p, q), a)[1](r.astype(f32))[0]
      dx_ours = lambda q, r: _onednn.transpose_lhs(r, _Float32Operand(x), q, padding=pads, dimension_numbers=dn)
      dw_xla = lambda p, r: jax.vjp(lambda q: xla(p, q), b)[1](r.astype(f32))[0]
      dw_ours = lambda p, r: _onednn.kernel_gradient(r, p, pads, dn)
      t = {"forward": (_median_ms(xla, (a, b), options, repeats), _median_ms(ours, (a, b), options, repeats)),
           "input gradient": (_median_ms(dx_xla, (b, c), options, repeats),
                              _median_ms(dx_ours, (b, c), options, repeats)),
           "kernel gradient": (_median_ms(dw_xla, (a, c), options, repeats),
                               _median_ms(dw_ours, (a, c), options, repeats))}
      if name == "conv1":  # the input's gradient is never needed for the first layer
        del t["input gradient"]
      line = ", ".join(f"{k} XLA {x_:.1f} / oneDNN {o:.1f} ms ({x_ / o:.2f}x, {flops / o / 1e6:.0f} GFLOP/s)"
                       for k, (x_, o) in t.items())
      print(f"  {name} {jnp.dtype(dtype).name}: {line}", flush=True)


def training(rounds: int, epochs: int) -> None:
  import training as T
  case = T.CASES["cnn"]
  x, y = T._case_data(case, 1.0)
  speeds = {}
  for _ in range(rounds):
    for precision in ("float32", "bfloat16"):
      for onednn in ("0", "1"):
        os.environ["JAXPHYS_ONEDNN"] = onednn
        seconds = T.bench_jaxphys(case, x, y, epochs, precision=precision)["seconds"]
        speeds.setdefault((precision, onednn), []).extend(seconds)
  for precision in ("float32", "bfloat16"):
    xla, ours = (len(x) / statistics.median(speeds[(precision, k)]) for k in ("0", "1"))
    print(f"  course CNN, {precision}: XLA's convolutions {xla:,.0f} images/s, oneDNN's {ours:,.0f} "
          f"({ours / xla:.2f}x)", flush=True)


def main(argv=None) -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--rounds", type=int, default=2)
  ap.add_argument("--epochs", type=int, default=3)
  ap.add_argument("--repeats", type=int, default=10)
  args = ap.parse_args(argv)
  if min(args.rounds, args.epochs, args.repeats) < 1:
    ap.error("--rounds, --epochs and --repeats must be positive")
  import training as T
  T._pin_threads(2)
  import jax
  import jaxlib
  from jaxphys import _onednn
  print(f"jax {jax.__version__}, jaxlib {jaxlib.__version__}, {os.cpu_count()} CPUs; oneDNN convolutions "
        f"{'on' if _onednn.enabled() else 'OFF (nothing to compare)'}", flush=True)
  if not _onednn.enabled():
    return
  print("pieces, batch 128:", flush=True)
  pieces(args.repeats)
  print(f"training, {args.rounds} alternating rounds of {args.epochs} timed epochs:", flush=True)
  training(args.rounds, args.epochs)


if __name__ == "__main__":
  main()
