"""The trainer's shared heap (``jaxphys.train._backend.share_one_heap``,
``JAXPHYS_SHARED_HEAP=1``) on and off, each run in a process of its own, in one run.

    python benchmarks/shared_heap.py [--configs cnn_b128 cnn_b256 cnn_x2 resnet_b64 mlp_b128
        susy_b1024] [--rounds 2]
        [--epochs 3]

Configurations: the course CNN at batch 128 and 256, 2 vmapped course CNNs at batch 128,
the ResNet (``jaxphys.ResNet()``, BatchNorm) at batch 64 (6,400 MNIST-shaped random
images each), the 512-512 MLP at batch 128 (30,720 images) and the SUSY network at batch
1024 (102,400 events), ``fit`` at the library's defaults. Each trains
in a fresh process with ``JAXPHYS_SHARED_HEAP=1`` (XLA's worker threads share glibc's
main heap) or ``0`` (the default: each thread gets a heap of its own). The two take
turns, the order reversed every round. Prints model-images per second over the median
timed epoch of each setting, each process's own figure, the ratio and the median minor
page faults per timed epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _turns  # noqa: E402 (beside this script)

# name: (model kind, one example's shape, batch, vmapped runs, examples per epoch)
CONFIGS = {"cnn_b128": ("cnn", (28, 28, 1), 128, None, 6_400),
           "cnn_b256": ("cnn", (28, 28, 1), 256, None, 6_400),
           "cnn_x2": ("cnn", (28, 28, 1), 128, 2, 6_400),
           "resnet_b64": ("resnet", (28, 28, 1), 64, None, 6_400),
           "mlp_b128": ("mlp", (28, 28, 1), 128, None, 30_720),
           "susy_b1024": ("susy", (18,), 1024, None, 102_400)}


def _worker(config: str, setting: str, epochs: int, path: str) -> None:
  from jaxphys.train import _backend  # (importing jaxphys applies the setting)
  assert _backend._ONE_HEAP == (setting == "shared"), "the setting did not take"
  import jaxphys as jp
  import training as T
  kind, shape, batch, runs, examples = CONFIGS[config]
  case = T.Case(config, "cnn" if kind == "resnet" else kind, shape, batch, examples)
  x, y = T._data(case, examples)
  out = T.bench_jaxphys(case, x, y, epochs, runs=runs, model=jp.ResNet() if kind == "resnet" else None)
  out["model_images_per_second"] = (runs or 1) * examples / statistics.median(out["seconds"])
  with open(path, "w") as f:
    json.dump(out, f)


def _run(config: str, setting: str, epochs: int) -> dict:
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "result.json")
    env = dict(os.environ, JAXPHYS_SHARED_HEAP="1" if setting == "shared" else "0")
    subprocess.run([sys.executable, __file__, "--worker", config, setting, str(epochs), path], check=True, env=env)
    with open(path) as f:
      return json.load(f)


def main(argv=None) -> dict:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
  _turns.add_options(ap)
  args = ap.parse_args(argv)
  _turns.check_options(ap, args)
  results = {}
  for config in args.configs:
    runs = _turns.by_turns(("own", "shared"), args.rounds, lambda s: _run(config, s, args.epochs))
    speed = {s: statistics.median([one["model_images_per_second"] for one in rs]) for s, rs in runs.items()}
    faults = {s: statistics.median([f for one in rs for f in one["minor_faults"]]) for s, rs in runs.items()}
    each = {s: ", ".join(f"{one['model_images_per_second']:,.0f}" for one in rs) for s, rs in runs.items()}
    results[config] = {"speed": speed, "faults": faults}
    print(f"{config}: own heaps {speed['own']:,.0f} model-images/s ({each['own']}), shared heap "
          f"{speed['shared']:,.0f} ({each['shared']}), shared / own {speed['shared'] / speed['own']:.2f}x; "
          f"minor page faults per epoch, median: {faults['own']:,.0f} own, {faults['shared']:,.0f} shared",
          flush=True)
  return results


if __name__ == "__main__":
  if sys.argv[1:2] == ["--worker"]:
    _worker(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
  else:
    main()
