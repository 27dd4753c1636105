"""Training throughput of the course's models: the jaxphys trainer against a plain per-step
Flax/Optax loop and, when they are installed, PyTorch and Keras, in one run.

Each framework trains the same architecture with Adam (learning rate 1e-3) on the same
synthetic data of the case's shape (MNIST-like images or SUSY-like events; throughput
does not depend on the values). Throughput is examples per second of the median epoch
after a first, untimed epoch (jaxphys: after ahead-of-time compilation, whose time is
reported separately). The frameworks take turns, one epoch each (the others' epochs run
between the jaxphys trainer's, in an order that rotates from turn to turn), so that every
ratio compares epochs run in the same minutes: on a shared machine absolute speeds drift
by tens of percent within a run.
Peers are optional: ``pip install torch keras tensorflow-cpu``.
Each case also prints every framework's FLOP/s (XLA's count of the plain step's work over
the framework's time) against the machine's float32 and bfloat16 matrix-multiply FLOP/s,
measured first.

``--precision`` picks the precisions: ``default`` (each framework's defaults: jaxphys's
``precision=None``, which on a CPU with AVX-512 BF16 is bfloat16 for convolutional models
and wide matrix products (the MLP, the SUSY network at batch 1024) and float32 otherwise,
the note says which ran; float32 for the others), ``float32``
(jaxphys with ``precision="float32"``; the peers, whose default it is, only when
``default`` is not asked for too) and ``bfloat16``, every framework in its own mixed
precision (jaxphys: ``make_train_step(..., precision="bfloat16")``; PyTorch:
``torch.autocast("cpu", dtype=torch.bfloat16)``; Keras: the ``mixed_bfloat16`` policy,
float32 logits; the plain Flax loop not). Each jaxphys entry's ratio to the fastest peer
is against the peers' defaults, and against their bfloat16 modes where measured.
``--isolated ROUNDS`` runs each framework and precision in a process of its own instead
(one process after another, ``ROUNDS`` rotating rounds), as a user runs one framework at a
time: no other framework's thread pools share the process.

    python benchmarks/training.py [--cases softmax mlp cnn cnn_aug susy_b100 susy_b1024 sweep]
        [--frameworks jaxphys flax torch keras] [--epochs 3] [--threads 2] [--scale 1.0]
        [--precision default float32 bfloat16] [--isolated ROUNDS]

PyTorch and TensorFlow get ``--threads`` intra-op threads; XLA uses every core, so keep
``--threads`` equal to the core count (``nproc``).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import platform
import resource
import statistics
import sys
import time
from typing import Callable, Optional


def _pin_threads(threads: int) -> None:
  """Pins PyTorch and TensorFlow to ``threads`` intra-op threads (before they are imported).
  XLA's CPU client uses one thread per core; run on a machine (or ``taskset``) with
  ``threads`` cores for a like-for-like comparison."""
  for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
    os.environ[var] = str(threads)
  os.environ["TF_NUM_INTEROP_THREADS"] = "1"
  os.environ.setdefault("KERAS_BACKEND", "tensorflow")
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@dataclasses.dataclass(frozen=True)
class Case:
  """One benchmark: a model family, its input shape and batch size, and how many examples."""
  name: str
  kind: str            # "softmax", "mlp", "cnn" or "susy"
  shape: tuple         # one example's shape
  batch: int
  examples: int        # per epoch, before --scale
  augment: bool = False


CASES = {c.name: c for c in [
    Case("softmax", "softmax", (28, 28, 1), 128, 60_000),
    Case("mlp", "mlp", (28, 28, 1), 128, 60_000),
    Case("cnn", "cnn", (28, 28, 1), 128, 6_400),
    Case("cnn_aug", "cnn", (28, 28, 1), 128, 6_400, augment=True),
    Case("susy_b100", "susy", (18,), 100, 100_000),
    Case("susy_b1024", "susy", (18,), 1024, 200_000),
]}
NUM_CLASSES = {"softmax": 10, "mlp": 10, "cnn": 10, "susy": 1}
LR = 1e-3
# A pause before each framework's turn: the previous framework's worker threads keep
# spinning for a while after its last operation (OpenMP, TensorFlow's thread pools).
SETTLE_SECONDS = 0.25


def _data(case: Case, n: int):
  import numpy as np
  rng = np.random.default_rng(0)
  x = rng.random((n,) + case.shape, dtype=np.float32)
  classes = max(NUM_CLASSES[case.kind], 2)
  y = rng.integers(0, classes, n).astype(np.float32 if case.kind == "susy" else np.int32)
  return x, y


def _timed(run: Callable[[], None]) -> Callable[[], float]:
  """``run`` as a function that runs it once and returns the seconds it took."""
  def timed() -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start
  return timed


def _timed_epochs(run_epoch: Callable[[], None], epochs: int) -> list:
  """Runs one untimed warm-up epoch, then ``epochs`` timed ones; returns their seconds."""
  run_epoch()
  return [_timed(run_epoch)() for _ in range(epochs)]


# ------------------------------------------------------------------------------ JAX


def _flax_model(kind: str):
  import jaxphys as jp
  if kind == "softmax":
    return jp.SoftmaxRegression(10)
  if kind == "mlp":
    return jp.MLP((512, 512, 10))
  if kind == "cnn":
    return jp.CNN()
  return jp.MLP((300, 300, 300, 300, 1), activation="tanh")


def _loss(kind: str):
  import jaxphys as jp
  return jp.binary_cross_entropy if kind == "susy" else jp.softmax_cross_entropy


def _augment(case: Case):
  from jaxphys import augment
  return augment.random_translation(2.0) if case.augment else None


def bench_jaxphys(case: Case, x, y, epochs: int, runs: Optional[int] = None, model=None,
                  shared_order: bool = False, between: Optional[Callable[[], None]] = None,
                  precision: str = "default") -> dict:
  """The library's trainer: ``fit`` as a user calls it (``runs``: K vmapped models,
  each in its own example order unless ``shared_order``); ``between()`` runs after each
  of its epochs (the other frameworks' turns); ``precision``: ``"default"`` (none
  given), ``"float32"`` or ``"bfloat16"``."""
  import jax
  import optax
  import jaxphys as jp

  model, tx = model or _flax_model(case.kind), optax.adam(LR)
  mixed = {} if precision == "default" else {"precision": precision}
  step = jp.make_train_step(model.apply, _loss(case.kind), tx, augment=_augment(case), **mixed)
  if runs is None:
    state = jp.create_train_state(jax.random.key(0), model, tx, x)
  else:
    state = jp.create_train_states(jax.random.split(jax.random.key(0), runs), model, tx, x)
  minflt = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  faults, since = [], [minflt()]  # each epoch's minor page faults, without the others' turns

  class Between(jp.callbacks.Callback):
    def on_epoch_end(self, loop, epoch, logs):
      faults.append(minflt() - since[0])
      if between is not None:
        between()
      since[0] = minflt()

  _, hist = jp.fit(state, step, x, y, key=jax.random.key(1), epochs=epochs + 1,
                   batch_size=case.batch, shared_order=shared_order, callbacks=[Between()])
  ran = hist["compilation"]["train"]["precision"]
  return {"seconds": list(hist["epoch_seconds"][1:]), "compile_seconds": hist["compile_seconds"],
          "minor_faults": faults[1:],  # the timed epochs
          "note": f"default: {ran}" if precision == "default" else precision}


def _plain_flax_cnn():
  """The course CNN as a Flax user writes it: ``flax.linen.Conv`` and ``max_pool``."""
  import flax.linen as nn

  class CNN(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
      x = nn.relu(nn.Conv(32, (3, 3), padding="VALID")(x))
      x = nn.relu(nn.Conv(64, (3, 3), padding="VALID")(x))
      x = nn.Dropout(0.25, deterministic=not train)(nn.max_pool(x, (2, 2), strides=(2, 2)))
      x = nn.relu(nn.Dense(128)(x.reshape(x.shape[0], -1)))
      return nn.Dense(10)(nn.Dropout(0.5, deterministic=not train)(x))

  return CNN()


def _plain_flax_step(case: Case, x):
  """The plain Flax/Optax step ``(params, opt_state, xb, yb, key) -> (params, opt_state)``,
  jitted, with its initial parameters and optimiser state."""
  import jax
  import optax

  model = _plain_flax_cnn() if case.kind == "cnn" else _flax_model(case.kind)
  tx, loss_fn, augment = optax.adam(LR), _loss(case.kind), _augment(case)
  params = model.init(jax.random.key(0), x[:1])["params"]

  @jax.jit
  def step(params, opt_state, xb, yb, key):
    aug_key, drop_key = jax.random.split(key)
    if augment is not None:
      xb = augment(aug_key, xb)

    def objective(p):
      logits = model.apply({"params": p}, xb, train=True, rngs={"dropout": drop_key})
      return loss_fn(logits, yb).mean()

    grads = jax.grad(objective)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  return step, params, tx.init(params)


def flax_epoch(case: Case, x, y) -> tuple[Callable[[], float], dict]:
  """A plain Flax/Optax loop: one jitted step per batch, batches sliced on the host; the
  CNN from ``flax.linen`` layers (the other models are the same Dense stacks). Returns
  a function that runs one epoch and returns its seconds, and the compile time."""
  import jax
  import numpy as np

  step, params, opt_state = _plain_flax_step(case, x)
  rng, key = np.random.default_rng(0), jax.random.key(1)
  state = [params, opt_state, 0]

  def run_epoch():
    order = rng.permutation(len(x))
    p, o, i = state
    for b in range(len(x) // case.batch):
      idx = order[b * case.batch:(b + 1) * case.batch]
      p, o = step(p, o, x[idx], y[idx], jax.random.fold_in(key, i))
      i += 1
    jax.block_until_ready(p)
    state[:] = [p, o, i]

  start = time.perf_counter()
  jax.block_until_ready(step.lower(params, opt_state, x[:case.batch], y[:case.batch], key).compile())
  compile_s = time.perf_counter() - start
  return _timed(run_epoch), {"compile_seconds": compile_s}


def flops_per_example(case: Case, x, y) -> float:
  """XLA's FLOP count (cost analysis) of one plain Flax/Optax training step, per example.

  It counts the standard formulation (VALID convolutions, gradients as JAX derives them,
  no input gradient of the first layer, Adam's update), so every framework's FLOP/s below
  is the same work divided by its time."""
  import jax

  step, params, opt_state = _plain_flax_step(case, x)
  cost = step.lower(params, opt_state, x[:case.batch], y[:case.batch], jax.random.key(1)).compile()
  cost = cost.cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  return cost["flops"] / case.batch


def matmul_flops_per_second(n: int = 2048, repeats: int = 10, dtype: str = "float32") -> float:
  """The machine's matrix-multiply FLOP/s in XLA: an ``n``^3 product of ``dtype`` inputs
  with a float32 result (float32 accumulation), median of ``repeats`` after compilation."""
  import jax
  import jax.numpy as jnp

  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32).astype(dtype)
  product = jax.jit(lambda u, v: jnp.matmul(u, v, preferred_element_type=jnp.float32))
  times = _timed_epochs(lambda: jax.block_until_ready(product(a, a)), repeats)
  return 2 * n**3 / statistics.median(times)


# -------------------------------------------------------------------------- PyTorch


def torch_model(kind: str):
  """The case's model in PyTorch (NCHW images), seeded with 0."""
  import torch
  from torch import nn

  torch.manual_seed(0)
  if kind == "softmax":
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
  if kind == "mlp":
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                         nn.Linear(512, 10))
  if kind == "cnn":
    return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Dropout(0.25), nn.Flatten(), nn.Linear(9216, 128), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(128, 10))
  layers, width = [], 18
  for _ in range(4):
    layers += [nn.Linear(width, 300), nn.Tanh()]
    width = 300
  return nn.Sequential(*layers, nn.Linear(300, 1), nn.Flatten(0))


def torch_epoch(case: Case, x, y, threads: int, precision: str = "float32") -> tuple[Callable[[], float], dict]:
  """The same model and loop in PyTorch (``--threads`` intra-op threads; bfloat16: the
  forward pass and the loss under ``torch.autocast``); as :func:`flax_epoch`."""
  import contextlib

  import numpy as np
  import torch
  from torch import nn

  torch.set_num_threads(threads)
  model = torch_model(case.kind)
  opt = torch.optim.Adam(model.parameters(), lr=LR)
  if case.kind == "susy":
    loss_fn, yt = nn.BCEWithLogitsLoss(), torch.from_numpy(y)
  else:
    loss_fn, yt = nn.CrossEntropyLoss(), torch.from_numpy(y.astype(np.int64))
  xt = torch.from_numpy(np.moveaxis(x, -1, 1).copy() if case.kind == "cnn" else x)
  gen = torch.Generator().manual_seed(0)

  def shift(xb):  # per-image random shift of up to 2 pixels, zero fill
    b, _, h, w = xb.shape
    pad = nn.functional.pad(xb, (2, 2, 2, 2))
    dy, dx = (torch.randint(0, 5, (b,), generator=gen) for _ in range(2))
    rows = (torch.arange(h)[None] + dy[:, None])[:, :, None]
    cols = (torch.arange(w)[None] + dx[:, None])[:, None, :]
    return pad[torch.arange(b)[:, None, None], 0, rows, cols][:, None]

  def run_epoch():
    model.train()
    order = torch.randperm(len(xt), generator=gen)
    for b in range(len(xt) // case.batch):
      idx = order[b * case.batch:(b + 1) * case.batch]
      xb = xt[idx]
      if case.augment:
        xb = shift(xb)
      opt.zero_grad(set_to_none=True)
      with mixed():
        loss = loss_fn(model(xb), yt[idx])
      loss.backward()
      opt.step()

  mixed = ((lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision == "bfloat16"
           else contextlib.nullcontext)
  return _timed(run_epoch), {"note": f"torch {torch.__version__}"
                                     + ("" if precision == "float32" else ", autocast bfloat16")}


# ---------------------------------------------------------------------------- Keras


def keras_epoch(case: Case, x, y, threads: int, precision: str = "float32") -> tuple[Callable[[], float], dict]:
  """The same model in Keras 3 on TensorFlow, one ``model.fit`` epoch per call, timed from
  its epoch's start to its end (each call's set-up is not counted; bfloat16: the
  ``mixed_bfloat16`` policy with float32 logits); as :func:`flax_epoch`."""
  import keras
  import tensorflow as tf

  tf.config.threading.set_intra_op_parallelism_threads(threads)
  tf.config.threading.set_inter_op_parallelism_threads(1)
  keras.utils.set_random_seed(0)
  keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "bfloat16" else "float32")
  layers = keras.layers
  inputs = [layers.Input(case.shape)]
  if case.augment:
    inputs.append(layers.RandomTranslation(2 / 28, 2 / 28, fill_mode="constant"))
  if case.kind == "softmax":
    body = [layers.Flatten(), layers.Dense(10)]
  elif case.kind == "mlp":
    body = [layers.Flatten(), layers.Dense(512, "relu"), layers.Dense(512, "relu"), layers.Dense(10)]
  elif case.kind == "cnn":
    body = [layers.Conv2D(32, 3, activation="relu"), layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(2), layers.Dropout(0.25), layers.Flatten(), layers.Dense(128, "relu"),
            layers.Dropout(0.5), layers.Dense(10)]
  else:
    body = [layers.Dense(300, "tanh") for _ in range(4)] + [layers.Dense(1)]
  if precision == "bfloat16":  # the logits, and so the loss, in float32 (Keras's advice)
    body.append(layers.Activation("linear", dtype="float32"))
  model = keras.Sequential(inputs + body)
  keras.mixed_precision.set_global_policy("float32")
  loss = (keras.losses.BinaryCrossentropy(from_logits=True) if case.kind == "susy"
          else keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  model.compile(keras.optimizers.Adam(LR), loss)

  class Timer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
      self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
      times.append(time.perf_counter() - self.start)

  times: list = []

  def epoch() -> float:
    model.fit(x, y, batch_size=case.batch, epochs=1, verbose=0, shuffle=True, callbacks=[Timer()])
    return times[-1]

  return epoch, {"note": f"keras {keras.__version__}, tf {tf.__version__}"
                        + ("" if precision == "float32" else ", mixed_bfloat16")}


# ----------------------------------------------------------------------------- main


def _installed(module: str) -> bool:
  import importlib.util
  return importlib.util.find_spec(module) is not None


def _paired(ours: list, theirs: list) -> str:
  """The ratio turn by turn: a framework's epoch over the jaxphys epoch of the same turn
  (the same minutes), as the median and range over the turns."""
  if len(ours) != len(theirs) or len(ours) < 2:
    return ""
  ratios = sorted(t / o for o, t in zip(ours, theirs))
  return f" (turn by turn: median {statistics.median(ratios):.2f}x, {ratios[0]:.2f}-{ratios[-1]:.2f}x)"


def case_examples(case: Case, scale: float) -> int:
  """Examples per epoch of ``case`` at ``scale``: whole batches, at least one."""
  return max(case.batch, int(case.examples * scale) // case.batch * case.batch)


def _case_data(case: Case, scale: float):
  return _data(case, case_examples(case, scale))


def run_case(case: Case, frameworks, epochs: int, threads: int, scale: float,
             matmul_flops: float, precision: str = "default") -> dict:
  x, y = _case_data(case, scale)
  peer = _peer_precision(precision)
  n = len(x)
  flops = flops_per_example(case, x, y)
  # Every framework but jaxphys as a one-epoch function; they take turns between the
  # jaxphys trainer's epochs (or among themselves), the first epoch of each untimed.
  makers = {"flax": lambda: flax_epoch(case, x, y),
            "torch": lambda: torch_epoch(case, x, y, threads, peer),
            "keras": lambda: keras_epoch(case, x, y, threads, peer)}
  others = {fw: makers[fw]() for fw in frameworks if fw != "jaxphys"}
  out = {fw: {"seconds": [], **info} for fw, (_, info) in others.items()}

  order, turn_count = list(others), itertools.count()

  def turns():  # the others' order rotates, so no framework always runs just before jaxphys
    k = next(turn_count) % max(len(order), 1)
    for fw in order[k:] + order[:k]:
      time.sleep(SETTLE_SECONDS)
      out[fw]["seconds"].append(others[fw][0]())
    time.sleep(SETTLE_SECONDS)

  if "jaxphys" in frameworks:
    out = {"jaxphys": bench_jaxphys(case, x, y, epochs, between=turns, precision=precision), **out}
  else:
    for _ in range(epochs + 1):
      turns()
  for fw in others:
    out[fw]["seconds"] = out[fw]["seconds"][1:]
  for fw in frameworks:
    out[fw]["examples_per_second"] = n / statistics.median(out[fw]["seconds"])
  ran = {"jaxphys": precision, "flax": "float32"}  # the plain Flax loop is float32 only
  out = {_label(fw, ran.get(fw, peer)): r for fw, r in out.items()}
  _report(out, flops, matmul_flops)
  return {"flops_per_example": flops, **out}


def _peer_precision(precision: str) -> str:
  """The peers' precision for a ``--precision`` name: their default is float32."""
  return "float32" if precision == "default" else precision


def _label(framework: str, precision: str) -> str:
  """``"torch"`` at a framework's defaults (and a peer's float32), else ``"jaxphys float32"``."""
  at_default = precision == "default" or (framework != "jaxphys" and precision == "float32")
  return framework if at_default else f"{framework} {precision}"


def _entries(frameworks, precisions) -> list:
  """The ``(framework, precision)`` pairs to run: no bfloat16 for the plain Flax loop, and
  the peers' float32 once (it is their default)."""
  out = []
  for p in precisions:
    for fw in frameworks:
      if p == "bfloat16" and fw == "flax":
        continue
      if p == "float32" and fw != "jaxphys" and "default" in precisions:
        continue
      out.append((fw, p))
  return out


def _report(out: dict, flops: float, matmul_flops: dict, paired: bool = True) -> None:
  """Prints each framework's throughput (keys from :func:`_label`), each jaxphys entry's
  ratios (``paired``: also turn by turn) and everyone's FLOP/s."""
  for fw, r in out.items():
    r["flops_per_second"] = flops * r["examples_per_second"]
    print(f"  {fw:16s} {r['examples_per_second']:12,.0f} /s   median epoch {statistics.median(r['seconds']):.2f} s"
          + (f", compile {r['compile_seconds']:.1f} s" if "compile_seconds" in r else "")
          + (f"  ({r['note']})" if r.get("note") else ""), flush=True)
  peers = {mode: [r["examples_per_second"] for f, r in out.items() if f in names]
           for mode, names in (("defaults", ("torch", "keras")),
                               ("bfloat16 modes", ("torch bfloat16", "keras bfloat16")))}
  for mine in [f for f in out if f.split()[0] == "jaxphys"]:
    ours = out[mine]["examples_per_second"]
    for fw in out:
      if fw.split()[0] != "jaxphys":
        print(f"  {mine} / {fw}: {ours / out[fw]['examples_per_second']:.2f}x"
              + (_paired(out[mine]["seconds"], out[fw]["seconds"]) if paired else ""))
    for mode, speeds in peers.items():
      if speeds:
        print(f"  {mine} / fastest peer at its {mode}: {ours / max(speeds):.2f}x")
  print(f"  FLOP/s ({flops / 1e6:.2f} MFLOP per example, XLA's count of the plain step), as a "
        f"share of the float32 / bfloat16 matrix multiply: "
        + ", ".join(f"{fw} {r['flops_per_second'] / 1e9:.0f} G = {r['flops_per_second'] / matmul_flops['float32']:.0%}"
                    f" / {r['flops_per_second'] / matmul_flops['bfloat16']:.0%}"
                    for fw, r in out.items()), flush=True)


def run_alone(case: Case, framework: str, epochs: int, threads: int, scale: float,
              precision: str) -> dict:
  """One framework alone in this process (the worker of ``--isolated``): its timed epochs'
  seconds after one untimed epoch, and its examples per second."""
  x, y = _case_data(case, scale)
  if framework == "jaxphys":
    r = bench_jaxphys(case, x, y, epochs, precision=precision)
  else:
    peer = _peer_precision(precision)
    makers = {"flax": lambda: flax_epoch(case, x, y),
              "torch": lambda: torch_epoch(case, x, y, threads, peer),
              "keras": lambda: keras_epoch(case, x, y, threads, peer)}
    epoch, info = makers[framework]()
    epoch()  # untimed warm-up; then each epoch's own timing, as in the turns of run_case
    r = {"seconds": [epoch() for _ in range(epochs)], **info}
  return {**r, "examples_per_second": len(x) / statistics.median(r["seconds"])}


def run_isolated(case: Case, entries: list, rounds: int, args, matmul_flops: dict) -> dict:
  """Each ``(framework, precision)`` of ``entries`` trained in a fresh process of its own,
  one process at a time, ``rounds`` rounds in a rotating order; a framework's throughput
  is over the median of all its timed epochs."""
  import json
  import subprocess
  import tempfile

  runs = {e: [] for e in entries}
  for r in range(rounds):
    k = r % len(entries)
    for fw, precision in entries[k:] + entries[:k]:
      with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "result.json")
        subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", fw, "--cases", case.name,
                        "--precision", precision, "--epochs", str(args.epochs), "--threads",
                        str(args.threads), "--scale", str(args.scale), "--json", path], check=True)
        with open(path) as f:
          runs[(fw, precision)].append(json.load(f))
  x, y = _case_data(case, args.scale)
  n, flops = len(x), flops_per_example(case, x, y)
  out = {}
  for (fw, precision), rs in runs.items():
    seconds = [t for one in rs for t in one["seconds"]]
    out[_label(fw, precision)] = {
        "seconds": seconds, "examples_per_second": n / statistics.median(seconds),
        "per_process": [one["examples_per_second"] for one in rs], "note": rs[0].get("note", "")}
  _report(out, flops, matmul_flops, paired=False)
  return {"flops_per_example": flops, **out}


def run_sweep(epochs: int, scale: float) -> dict:
  """K vmapped runs against K runs one after the other (8 logistic regressions, 4 MLPs
  512-512 and 4 small ones, 18-64-64-1, 2 course CNNs): each vmapped run in its own
  example order (the default) and all in one order."""
  import jaxphys as jp
  out = {}
  sweeps = {  # logistic regression and the small MLP on SUSY-shaped events
      "logreg": (8, Case("sweep_logreg", "susy", (18,), 128, 100_000), jp.LogisticRegression()),
      "mlp": (4, Case("sweep_mlp", "mlp", (28, 28, 1), 128, 20_000), None),
      "mlp_small": (4, Case("sweep_mlp_small", "susy", (18,), 128, 100_000), jp.MLP((64, 64, 1))),
      "cnn": (2, Case("sweep_cnn", "cnn", (28, 28, 1), 128, 3_200), None),  # the default precision
  }
  for kind, (k, case, model) in sweeps.items():
    n = int(case.examples * scale) // case.batch * case.batch
    x, y = _data(case, n)
    t1 = statistics.median(bench_jaxphys(case, x, y, epochs, model=model)["seconds"])
    out[kind] = {"K": k, "one_run_seconds": t1}
    for shared in (False, True):
      many = bench_jaxphys(case, x, y, epochs, runs=k, model=model, shared_order=shared)
      tk = statistics.median(many["seconds"])
      label = "shared_order" if shared else "own_orders"
      out[kind][label] = {"vmapped_seconds": tk, "speedup": k * t1 / tk}
      print(f"  {k} x {kind}, {label.replace('_', ' ')}: one run {t1:.3f} s/epoch, {k} vmapped "
            f"{tk:.3f} s/epoch -> {k * t1 / tk:.2f}x faster than {k} runs in sequence "
            f"(target >= {k / 2:g})", flush=True)
  return out


def main(argv=None) -> dict:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--cases", nargs="+", default=[*CASES, "sweep"], choices=[*CASES, "sweep"])
  ap.add_argument("--frameworks", nargs="+", default=["jaxphys", "flax", "torch", "keras"],
                  choices=["jaxphys", "flax", "torch", "keras"])
  ap.add_argument("--epochs", type=int, default=3, help="timed epochs (after one warm-up epoch)")
  ap.add_argument("--threads", type=int, default=2)
  ap.add_argument("--scale", type=float, default=1.0, help="multiplies every case's examples per epoch")
  ap.add_argument("--precision", nargs="+", default=["default"], choices=["default", "float32", "bfloat16"])
  ap.add_argument("--isolated", type=int, default=0, metavar="ROUNDS",
                  help="each framework and precision in a process of its own, ROUNDS rounds")
  ap.add_argument("--worker", choices=["jaxphys", "flax", "torch", "keras"], help=argparse.SUPPRESS)
  ap.add_argument("--json", help=argparse.SUPPRESS)
  args = ap.parse_args(argv)
  if args.isolated < 0:
    ap.error(f"--isolated: ROUNDS must be 0 (off) or positive, got {args.isolated}")
  _pin_threads(args.threads)
  if args.worker:  # one framework in this process, for --isolated; no JAX unless it is one
    import json
    result = run_alone(CASES[args.cases[0]], args.worker, args.epochs, args.threads, args.scale,
                       args.precision[0])
    with open(args.json, "w") as f:
      json.dump({k: v for k, v in result.items() if k in ("seconds", "examples_per_second", "note", "minor_faults")}, f)
    return result
  import jax
  frameworks = [f for f in args.frameworks if f in ("jaxphys", "flax")
                or _installed({"torch": "torch", "keras": "keras"}[f])]
  missing = sorted(set(args.frameworks) - set(frameworks))
  print(f"jax {jax.__version__} on {jax.devices()[0].platform} ({jax.device_count()} device), "
        f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, threads {args.threads}, "
        f"Python {sys.version.split()[0]}" + (f"; not installed: {', '.join(missing)}" if missing else ""))
  matmul = {d: matmul_flops_per_second(dtype=d) for d in ("float32", "bfloat16")}
  results = {"matmul_flops_per_second": matmul}
  print(f"matrix multiply (2048^3, XLA, float32 accumulation): float32 {matmul['float32'] / 1e9:.0f}, "
        f"bfloat16 {matmul['bfloat16'] / 1e9:.0f} GFLOP/s", flush=True)
  for name in args.cases:
    if name == "sweep":
      print(f"{name}:", flush=True)
      results[name] = run_sweep(args.epochs, args.scale)
    elif args.isolated:
      print(f"{name}, each framework in a process of its own, {args.isolated} rounds:", flush=True)
      case = CASES[name]
      results[name] = run_isolated(case, _entries(frameworks, args.precision), args.isolated, args, matmul)
    else:
      for precision in args.precision:
        print(f"{name} ({precision}):", flush=True)
        results[f"{name} {precision}"] = run_case(CASES[name], frameworks, args.epochs, args.threads,
                                                  args.scale, matmul, precision)
  return results


if __name__ == "__main__":
  main()
