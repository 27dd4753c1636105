"""The course CNN's second convolution, piece by piece: XLA (as jaxphys compiles it)
against PyTorch, alternated in one process.

The second convolution (batch 128, 26 x 26 x 32 -> 24 x 24 x 64, 3 x 3 kernel, VALID)
is most of the CNN's training step. Each of its three products, the forward
convolution, the input gradient and the kernel gradient, is timed alone, 2.72 GFLOP
each (2 x 128 x 24 x 24 x 64 x 288), every framework's pieces taking turns after a pause
that lets the previous one's worker threads go idle. The values are checked against
each other first.

    python benchmarks/conv_pieces.py [--frameworks xla xla-defaults torch torch-cl]
        [--repeats 10] [--batch 128] [--threads 2]

``xla``: ````jaxphys.train._backend.options(..., convolutions=True)```` (convolutions on Eigen);
``xla-defaults``: XLA's own options (convolutions on YNNPACK); ``torch``: NCHW tensors,
as ``benchmarks/training.py`` trains; ``torch-cl``: channels-last tensors. For how a
piece scales with cores, run XLA alone on one (``taskset -c 0 ... --frameworks xla``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from training import SETTLE_SECONDS, _pin_threads

FRAMEWORKS = ("xla", "xla-defaults", "torch", "torch-cl")
PIECES = ("forward", "input gradient", "kernel gradient")


def _operands(batch: int):
  """Random NHWC input ``(batch, 26, 26, 32)``, HWIO kernel ``(3, 3, 32, 64)`` and
  output gradient ``(batch, 24, 24, 64)``, float32."""
  import numpy as np
  rng = np.random.default_rng(0)
  return (rng.random((batch, 26, 26, 32), dtype=np.float32),
          0.1 * rng.random((3, 3, 32, 64), dtype=np.float32),
          rng.random((batch, 24, 24, 64), dtype=np.float32))


def xla_pieces(x, w, g, jaxphys_options: bool) -> dict:
  """Each piece as ``(run, value)``: ``run()`` calls its compiled XLA program and waits
  for it; ``value()`` returns the result as NHWC / HWIO NumPy."""
  import jax
  import numpy as np

  def conv(x, w):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))

  fns = {"forward": lambda x, w, g: conv(x, w),
         "input gradient": lambda x, w, g: jax.vjp(lambda x: conv(x, w), x)[1](g)[0],
         "kernel gradient": lambda x, w, g: jax.vjp(lambda w: conv(x, w), w)[1](g)[0]}
  args = [jax.device_put(a) for a in (x, w, g)]
  from jaxphys.train import _backend
  options = _backend.options("cpu", convolutions=True, dot_flops=0) if jaxphys_options else {}
  out = {}
  for piece, fn in fns.items():
    compiled = jax.jit(fn).lower(*args).compile(options or None)
    run = lambda c=compiled: jax.block_until_ready(c(*args))
    out[piece] = (run, lambda run=run: np.asarray(run()))
  return out


def torch_pieces(x, w, g, channels_last: bool, threads: int) -> dict:
  """The same pieces in PyTorch (oneDNN on CPU), as :func:`xla_pieces`."""
  import numpy as np
  import torch

  torch.set_num_threads(threads)
  xt, wt, gt = (torch.from_numpy(np.ascontiguousarray(np.transpose(a, p)))
                for a, p in ((x, (0, 3, 1, 2)), (w, (3, 2, 0, 1)), (g, (0, 3, 1, 2))))
  if channels_last:
    xt, wt, gt = (t.contiguous(memory_format=torch.channels_last) for t in (xt, wt, gt))
  runs = {"forward": lambda: torch.conv2d(xt, wt),
          "input gradient": lambda: torch.nn.grad.conv2d_input(xt.shape, wt, gt),
          "kernel gradient": lambda: torch.nn.grad.conv2d_weight(xt, wt.shape, gt)}
  layout = {"forward": (0, 2, 3, 1), "input gradient": (0, 2, 3, 1), "kernel gradient": (2, 3, 1, 0)}
  return {p: (run, lambda run=run, p=p: run().numpy().transpose(layout[p])) for p, run in runs.items()}


def main(argv=None) -> dict:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--frameworks", nargs="+", default=["xla", "torch", "torch-cl"], choices=FRAMEWORKS)
  ap.add_argument("--repeats", type=int, default=10, help="timed calls of each piece, alternated")
  ap.add_argument("--batch", type=int, default=128)
  ap.add_argument("--threads", type=int, default=2, help="PyTorch's intra-op threads")
  args = ap.parse_args(argv)
  _pin_threads(args.threads)
  import importlib.util
  import numpy as np

  x, w, g = _operands(args.batch)
  frameworks = [f for f in args.frameworks if not f.startswith("torch") or importlib.util.find_spec("torch")]
  runs = {}
  for fw in frameworks:
    if fw.startswith("xla"):
      runs[fw] = xla_pieces(x, w, g, jaxphys_options=fw == "xla")
    else:
      runs[fw] = torch_pieces(x, w, g, channels_last=fw == "torch-cl", threads=args.threads)
  first = frameworks[0]
  for piece in PIECES:  # same values (and a warm-up call of every piece)
    want = runs[first][piece][1]()
    for fw in frameworks[1:]:
      np.testing.assert_allclose(runs[fw][piece][1](), want, rtol=1e-4, atol=1e-3 * float(np.abs(want).max()),
                                 err_msg=f"{fw} against {first}: {piece}")
  times = {(fw, p): [] for fw in frameworks for p in PIECES}
  for _ in range(args.repeats):
    for piece in PIECES:
      for fw in frameworks:
        time.sleep(SETTLE_SECONDS)
        start = time.perf_counter()
        runs[fw][piece][0]()
        times[fw, piece].append(time.perf_counter() - start)
  flops = 2 * args.batch * 24 * 24 * 64 * 3 * 3 * 32
  versions = []
  if any(f.startswith("xla") for f in frameworks):
    import jax
    versions.append(f"jax {jax.__version__}")
  if any(f.startswith("torch") for f in frameworks):
    import torch
    versions.append(f"torch {torch.__version__}")
  print(f"second convolution, batch {args.batch}, {flops / 1e9:.2f} GFLOP per piece; {', '.join(versions)}, "
        f"{os.cpu_count()} CPUs; median ms of {args.repeats} (GFLOP/s)")
  out = {}
  for piece in PIECES:
    row = {fw: statistics.median(times[fw, piece]) for fw in frameworks}
    out[piece] = row
    print(f"  {piece:16s}" + "".join(f"  {fw} {1e3 * s:6.1f} ({flops / s / 1e9:4.0f})" for fw, s in row.items()))
  return out


if __name__ == "__main__":
  main()
