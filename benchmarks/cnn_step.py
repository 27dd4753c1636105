"""What each of the second convolution's gradients costs inside the course CNN's
training step: jaxphys against PyTorch, in one process.

Each framework's step (batch 128, Adam, dropout on) runs whole and with one gradient
left out: the second convolution's kernel gradient (its kernel and bias frozen), or its
input gradient (the first convolution frozen, so nothing below the second needs a
gradient). A variant's time subtracted from the whole step's is what that gradient costs
in context. The variants take turns in blocks of steps on one fixed batch, after a pause
that lets the previous framework's worker threads go idle.

    python benchmarks/cnn_step.py [--rounds 10] [--steps 3] [--threads 2]
    python benchmarks/cnn_step.py --precisions [--models cnn mlp] [--rounds 6] [--examples 2560]

jaxphys's step is compiled as ``fit`` compiles it (``jaxphys.train._backend``); a
frozen layer's parameters pass through ``jax.lax.stop_gradient``, so XLA drops the
gradient's computation. PyTorch's frozen layers have ``requires_grad=False``.
``benchmarks/conv_pieces.py`` times the same convolutions alone.

``--precisions``: jaxphys alone, float32 against the bfloat16 policy
(``make_train_step(..., precision=...)``, :mod:`jaxphys.mixed_precision`), as a user
trains: whole epochs of ``jp.make_train_epoch`` (compiled as ``fit`` compiles them) over
``--examples`` random MNIST-shaped examples, batch 128, Adam, for the course CNN and the
512-512 MLP, the precisions taking turns epoch by epoch (the order reversed every
round). It prints images/s and the process's CPU seconds per epoch (all threads), and
the bfloat16 / float32 speed ratio of each round (median and range).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from training import LR, SETTLE_SECONDS, _pin_threads, torch_model

# variant -> (jaxphys parameter collections, PyTorch module indices) left frozen
VARIANTS = {
    "whole step": ((), ()),
    "no kernel gradient of conv 2": (("Conv_1",), (2,)),
    "no input gradient of conv 2": (("Conv_0",), (0,)),
}


def jaxphys_steps(x, y) -> dict:
  """Variant -> a function running one step of the course CNN in jaxphys (state kept)."""
  import jax
  import optax
  import jaxphys as jp
  from jaxphys.train import _backend

  model, tx = jp.CNN(), optax.adam(LR)
  batch, key = {"x": jax.numpy.asarray(x), "y": jax.numpy.asarray(y)}, jax.random.key(1)
  out = {}
  for variant, (frozen, _) in VARIANTS.items():
    def apply(variables, *args, frozen=frozen, **kwargs):
      params = {k: jax.lax.stop_gradient(v) if k in frozen else v for k, v in variables["params"].items()}
      return model.apply({**variables, "params": params}, *args, **kwargs)

    step = jp.make_train_step(apply, jp.softmax_cross_entropy, tx)
    state = [jp.create_train_state(jax.random.key(0), model, tx, x)]
    options = _backend.options(jax.default_backend(), convolutions=True, dot_flops=0)
    compiled = _backend.jit(step, options).lower(state[0], batch, key).compile()

    def run(compiled=compiled, state=state):
      state[0], _ = compiled(state[0], batch, key)
      jax.block_until_ready(state[0])
    out[variant] = run
  return out


def torch_steps(x, y, threads: int) -> dict:
  """Variant -> a function running one step of the same CNN in PyTorch."""
  import numpy as np
  import torch
  from torch import nn

  torch.set_num_threads(threads)
  xt, yt = torch.from_numpy(np.moveaxis(x, -1, 1).copy()), torch.from_numpy(y.astype(np.int64))
  loss_fn, out = nn.CrossEntropyLoss(), {}
  for variant, (_, frozen) in VARIANTS.items():
    model = torch_model("cnn")
    for i in frozen:
      model[i].requires_grad_(False)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=LR)

    def run(model=model, opt=opt):
      opt.zero_grad(set_to_none=True)
      loss_fn(model(xt), yt).backward()
      opt.step()
    out[variant] = run
  return out


PRECISIONS = ("float32", "bfloat16")


def precision_epochs(models, rounds: int, examples: int) -> dict:
  """``{model: {precision: (images/s per round, CPU s per round)}}``, from epochs of
  ``jp.make_train_epoch`` that alternate between the precisions."""
  import jax
  import numpy as np
  import optax
  import jaxphys as jp

  rng = np.random.default_rng(0)
  x = rng.random((examples, 28, 28, 1), dtype=np.float32)
  y = rng.integers(0, 10, examples).astype(np.int32)
  builders = {"cnn": jp.CNN, "mlp": lambda: jp.MLP((512, 512, 10))}
  out = {}
  for name in models:
    model, tx = builders[name](), optax.adam(LR)
    runs = {}
    for precision in PRECISIONS:
      step = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx, precision=precision)
      epoch = jp.make_train_epoch(step, x, y, batch_size=128)
      state, _ = epoch(jp.create_train_state(jax.random.key(0), model, tx, x), jax.random.key(1), 0)
      runs[precision] = [epoch, state]
    speed = {p: [] for p in PRECISIONS}
    cpu = {p: [] for p in PRECISIONS}
    for r in range(rounds):
      for precision in (PRECISIONS if r % 2 == 0 else PRECISIONS[::-1]):
        epoch, state = runs[precision]
        time.sleep(SETTLE_SECONDS)
        start, cpu_start = time.perf_counter(), time.process_time()
        state, _ = epoch(state, jax.random.key(1), r + 1)  # returns after the epoch's metrics
        speed[precision].append(examples / (time.perf_counter() - start))
        cpu[precision].append(time.process_time() - cpu_start)
        runs[precision][1] = state
    out[name] = {p: (speed[p], cpu[p]) for p in PRECISIONS}
  return out


def _print_precisions(results: dict, rounds: int, examples: int) -> None:
  print(f"jaxphys epochs of {examples} examples, batch 128, Adam, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}; median of {rounds} alternated rounds")
  for name, res in results.items():
    (s32, c32), (s16, c16) = res["float32"], res["bfloat16"]
    ratios = sorted(b / a for a, b in zip(s32, s16))
    print(f"  {name}: float32 {statistics.median(s32):,.0f} images/s ({statistics.median(c32):.2f} CPU s/epoch), "
          f"bfloat16 {statistics.median(s16):,.0f} images/s ({statistics.median(c16):.2f} CPU s/epoch); "
          f"bfloat16 / float32 {statistics.median(ratios):.2f} (rounds {ratios[0]:.2f}-{ratios[-1]:.2f})")


def main(argv=None) -> dict:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--rounds", type=int, default=10, help="timed blocks of each variant, alternated")
  ap.add_argument("--steps", type=int, default=3, help="steps per block")
  ap.add_argument("--threads", type=int, default=2, help="PyTorch's intra-op threads")
  ap.add_argument("--precisions", action="store_true", help="jaxphys epochs, float32 against bfloat16")
  ap.add_argument("--models", nargs="+", default=["cnn", "mlp"], choices=["cnn", "mlp"])
  ap.add_argument("--examples", type=int, default=2560, help="examples per epoch (--precisions)")
  args = ap.parse_args(argv)
  _pin_threads(args.threads)
  if args.precisions:
    results = precision_epochs(args.models, args.rounds, args.examples)
    _print_precisions(results, args.rounds, args.examples)
    return results
  import importlib.util
  import numpy as np

  rng = np.random.default_rng(0)
  x = rng.random((128, 28, 28, 1), dtype=np.float32)
  y = rng.integers(0, 10, 128).astype(np.int32)
  runs = {"jaxphys": jaxphys_steps(x, y)}
  if importlib.util.find_spec("torch"):
    runs["PyTorch"] = torch_steps(x, y, args.threads)
  blocks = [(fw, v) for fw in runs for v in VARIANTS]
  for fw, v in blocks:  # warm-up
    runs[fw][v]()
  times = {b: [] for b in blocks}
  for _ in range(args.rounds):
    for fw, v in blocks:
      time.sleep(SETTLE_SECONDS)
      start = time.perf_counter()
      for _ in range(args.steps):
        runs[fw][v]()
      times[fw, v].append((time.perf_counter() - start) / args.steps)
  print(f"course CNN training step, batch 128, {os.cpu_count()} CPUs; median ms of {args.rounds} "
        f"blocks of {args.steps} steps (the whole step minus the variant: that gradient's cost)")
  out = {}
  for fw in runs:
    whole = statistics.median(times[fw, "whole step"])
    out[fw] = {v: statistics.median(times[fw, v]) for v in VARIANTS}
    print(f"  {fw}: " + ", ".join(
        f"{v} {1e3 * t:.1f}" + ("" if v == "whole step" else f" ({1e3 * (whole - t):+.1f})")
        for v, t in out[fw].items()))
  if len(runs) == 2:
    print(f"  jaxphys / PyTorch, whole step: {out['PyTorch']['whole step'] / out['jaxphys']['whole step']:.2f}x")
  return out


if __name__ == "__main__":
  main()
