"""The course CNN's second convolution, piece by piece: XLA (as jaxphys compiles it)
against PyTorch, alternated in one process.

The second convolution (batch 128, 26 x 26 x 32 -> 24 x 24 x 64, 3 x 3 kernel, VALID)
is most of the CNN's training step. Each of its three products, the forward
convolution, the input gradient and the kernel gradient, is timed alone, 2.72 GFLOP
each (2 x 128 x 24 x 24 x 64 x 288), every framework's pieces taking turns after a pause
that lets the previous one's worker threads go idle. The values are checked against
each other first.

    python benchmarks/conv_pieces.py [--frameworks xla xla-defaults xla-bf16 xla-patches-bf16
        torch torch-cl] [--repeats 10] [--batch 128] [--threads 2]

``xla``: ````jaxphys.train._backend.options(..., convolutions=True)```` (convolutions on Eigen);
``xla-defaults``: XLA's own options (convolutions on YNNPACK); ``torch``: NCHW tensors,
as ``benchmarks/training.py`` trains; ``torch-cl``: channels-last tensors. For how a
piece scales with cores, run XLA alone on one (``taskset -c 0 ... --frameworks xla``).

bfloat16 (operands rounded to bfloat16, products accumulated and returned in float32,
with ``xla``'s options): ``xla-bf16`` is XLA's convolution with bfloat16 operands
(``preferred_element_type=float32``); ``xla-patches-bf16`` is the convolution as im2col,
the 3 x 3 patches gathered by nine slices into ``(batch, 24, 24, 288)`` and one bfloat16
``dot_general``, its gradients by autodiff. Their values are checked against the others'
to bfloat16's tolerance (2e-2 of the largest value).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from training import SETTLE_SECONDS, _pin_threads

FRAMEWORKS = ("xla", "xla-defaults", "xla-bf16", "xla-patches-bf16", "torch", "torch-cl")
PIECES = ("forward", "input gradient", "kernel gradient")


def _operands(batch: int):
  """Random NHWC input ``(batch, 26, 26, 32)``, HWIO kernel ``(3, 3, 32, 64)`` and
  output gradient ``(batch, 24, 24, 64)``, float32."""
  import numpy as np
  rng = np.random.default_rng(0)
  return (rng.random((batch, 26, 26, 32), dtype=np.float32),
          0.1 * rng.random((3, 3, 32, 64), dtype=np.float32),
          rng.random((batch, 24, 24, 64), dtype=np.float32))


def xla_pieces(x, w, g, jaxphys_options: bool, variant: str = "float32") -> dict:
  """Each piece as ``(run, value)``: ``run()`` calls its compiled XLA program and waits
  for it; ``value()`` returns the result as NHWC / HWIO NumPy. ``variant``:
  ``"float32"``, ``"bf16"`` (bfloat16 operands, float32 accumulation) or
  ``"patches-bf16"`` (im2col and one bfloat16 product)."""
  import jax
  import jax.numpy as jnp
  import numpy as np

  def xla_conv(x, w, out=None):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                        preferred_element_type=out)

  def patches_conv(x, w):
    kh, kw, cin, cout = w.shape
    h, wd = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    cols = jnp.concatenate([x[:, i:i + h, j:j + wd, :] for i in range(kh) for j in range(kw)], -1)
    return jax.lax.dot_general(cols, w.reshape(kh * kw * cin, cout), (((3,), (0,)), ((), ())),
                               preferred_element_type=jnp.float32)

  if variant == "float32":
    conv = xla_conv
  else:
    inner = patches_conv if variant == "patches-bf16" else (lambda x, w: xla_conv(x, w, jnp.float32))
    conv = lambda x, w: inner(x.astype(jnp.bfloat16), w.astype(jnp.bfloat16)).astype(jnp.float32)

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
      runs[fw] = xla_pieces(x, w, g, jaxphys_options=fw != "xla-defaults",
                            variant={"xla-bf16": "bf16", "xla-patches-bf16": "patches-bf16"}.get(fw, "float32"))
    else:
      runs[fw] = torch_pieces(x, w, g, channels_last=fw == "torch-cl", threads=args.threads)
  first = frameworks[0]
  for piece in PIECES:  # same values (and a warm-up call of every piece)
    want = runs[first][piece][1]()
    for fw in frameworks[1:]:
      loose = "bf16" in fw or "bf16" in first
      np.testing.assert_allclose(runs[fw][piece][1](), want, rtol=0 if loose else 1e-4,
                                 atol=(2e-2 if loose else 1e-3) * float(np.abs(want).max()),
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
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; median ms of {args.repeats} (GFLOP/s)")
  out = {}
  for piece in PIECES:
    row = {fw: statistics.median(times[fw, piece]) for fw in frameworks}
    out[piece] = row
    print(f"  {piece:16s}" + "".join(f"  {fw} {1e3 * s:6.1f} ({flops / s / 1e9:4.0f})" for fw, s in row.items()))
  return out


if __name__ == "__main__":
  main()
