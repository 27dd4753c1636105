"""Where a training step's time goes: the compiled step of a course model, traced with
``jax.profiler``, per XLA operation, forward and backward apart.

    python benchmarks/profile_step.py [--model cnn|mlp|softmax|susy] [--batch 128] [--steps 5]
        [--precision float32|bfloat16]

Prints the median step time (untraced), then for the traced steps each operation's
time per step, whether it belongs to the forward or the backward pass (JAX names the
backward's operations ``transpose(jvp(...))``) and the layer it comes from, from the
compiled HLO's metadata. On XLA's CPU backend some operations (for example Eigen
convolutions) emit no trace event, and independent operations can run at once on
several cores: the script reports both the operations' summed time and the part of the
step they cover.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import re
import statistics
import tempfile
import time


def _step_and_batch(model_name: str, batch: int, precision: str = "float32"):
  """The model, loss, optimiser and synthetic data of ``benchmarks/training.py``'s case."""
  import jax
  import optax
  import jaxphys as jp
  from training import LR, Case, _data, _flax_model, _loss

  case = Case(model_name, model_name, (18,) if model_name == "susy" else (28, 28, 1), batch, batch)
  x, y = _data(case, batch)
  model, tx = _flax_model(model_name), optax.adam(LR)
  step = jp.make_train_step(model.apply, _loss(model_name), tx, precision=precision)
  state = jp.create_train_state(jax.random.key(0), model, tx, x)
  data = {"x": jax.numpy.asarray(x), "y": jax.numpy.asarray(y)}
  # Compiled as fit compiles it (on CPU, convolutions off YNNPACK, for the CNN the
  # memory-minimising schedule, and for small programs dots off YNNPACK too).
  from jaxphys.train import _backend
  options = _backend.plan(jax.make_jaxpr(step)(state, data, jax.random.key(0)).jaxpr)[1]
  return _backend.jit(step, options), state, data


def _hlo_origins(hlo_text: str) -> dict:
  """Maps each HLO instruction name to its ``op_name`` metadata (the JAX source op)."""
  out = {}
  for m in re.finditer(r"%([\w.\-]+) = [^\n]*?metadata=\{op_name=\"([^\"]+)\"", hlo_text):
    out.setdefault(m.group(1), m.group(2))
  return out


def main(argv=None) -> dict:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--model", default="cnn", choices=["cnn", "mlp", "softmax", "susy"])
  ap.add_argument("--batch", type=int, default=128)
  ap.add_argument("--steps", type=int, default=5, help="traced steps (after the timed ones)")
  ap.add_argument("--top", type=int, default=25, help="operations listed")
  ap.add_argument("--precision", default="float32", choices=["float32", "bfloat16"],
                  help="the step's precision (jaxphys.mixed_precision)")
  args = ap.parse_args(argv)
  import jax

  step, state, batch = _step_and_batch(args.model, args.batch, args.precision)
  key = jax.random.key(1)
  origins = _hlo_origins(step.lower(state, batch, key).compile().as_text())
  for _ in range(3):
    state, _ = step(state, batch, key)
  jax.block_until_ready(state)
  times = []
  for _ in range(20):
    start = time.perf_counter()
    state, _ = step(state, batch, key)
    jax.block_until_ready(state)
    times.append(time.perf_counter() - start)
  step_ms = 1e3 * statistics.median(times)

  with tempfile.TemporaryDirectory() as trace_dir:
    with jax.profiler.trace(trace_dir):
      for _ in range(args.steps):
        state, _ = step(state, batch, key)
        jax.block_until_ready(state)
    [path] = glob.glob(f"{trace_dir}/**/*.trace.json.gz", recursive=True)
    with gzip.open(path) as f:
      events = json.load(f)["traceEvents"]

  per_op = collections.Counter()
  spans = []
  for e in events:  # complete events of the compiled program's operations
    if e.get("ph") == "X" and e.get("name") in origins:
      per_op[e["name"]] += e["dur"] / 1e3 / args.steps
      spans.append((e["ts"], e["ts"] + e["dur"]))
  covered, end = 0.0, float("-inf")  # the union of the operations' intervals
  for a, b in sorted(spans):
    covered += max(0.0, b - max(a, end))
    end = max(end, b)
  covered /= 1e3 * args.steps
  traced = sum(per_op.values())
  print(f"{args.model} ({args.precision}), batch {args.batch}, jax {jax.__version__} on {jax.devices()[0].platform}: "
        f"step {step_ms:.1f} ms (median of 20)")
  print(f"traced operations take {traced:.1f} ms per step in all and cover {covered:.1f} ms of "
        f"it (two can run at once); the other {max(0.0, step_ms - covered):.1f} ms are "
        f"untraced operations or waiting")
  print(f"{'ms/step':>8}  {'share':>5}  {'pass':8}  operation (source)")
  rows = []
  for name, ms in per_op.most_common(args.top):
    origin = origins[name]
    phase = "backward" if "transpose(" in origin else "forward"
    rows.append({"op": name, "ms": ms, "pass": phase, "origin": origin})
    source = re.sub(r"^(jit\([^)]*\)/)+", "", origin)  # the outer jit(s)
    print(f"{ms:8.2f}  {ms / step_ms:5.0%}  {phase:8}  {name} ({source})")
  for phase in ("forward", "backward"):
    total = sum(ms for name, ms in per_op.items() if ("transpose(" in origins[name]) == (phase == "backward"))
    print(f"{phase}: {total:.1f} ms traced")
  return {"step_ms": step_ms, "traced_ms": traced, "covered_ms": covered, "ops": rows}


if __name__ == "__main__":
  main()
