"""``fit``'s epoch shuffle: NumPy's permutation on the host against the former Numba one.

``fit`` orders epoch ``e`` by a NumPy permutation seeded from ``(key, e)``
(``jaxphys.train._epoch.host_order``). The former trainer used ``_numba_shuffle.py``
(kept here for this comparison): ``jax.random.permutation`` bit for bit, computed in
Numba on host threads. Times: the shuffle alone for 1 and 8 keys, then ``fit``'s median
epoch and its whole wall time for the sweep case of ``training.py`` (logistic regression,
100,000 SUSY-shaped events, batch 128; one run, 8 vmapped runs in their own orders and in
a shared order), the two shuffles alternated ``--repeats`` times in one process. The
Numba variant gets its epoch keys precomputed (its best case: no device work in the
loop); its start-up (import, loading its compiled cache) is timed separately.

    python benchmarks/shuffle.py [--examples 100000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import numpy as np
import optax

import jaxphys as jp
from jaxphys.train import _epoch


def _median_ms(fn, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return 1e3 * statistics.median(times)


def numba_order(numba_shuffle):
  """A ``host_order`` replacement drawing ``jax.random.permutation`` with Numba."""
  keys = {}

  def order(words, epoch, n):
    if (words.tobytes(), epoch) not in keys:  # epoch keys outside the timed loop when warmed
      base = jax.random.wrap_key_data(np.asarray(words, np.uint32))
      fold = jax.vmap(jax.random.fold_in, in_axes=(0, None)) if words.ndim == 2 else jax.random.fold_in
      keys[words.tobytes(), epoch] = fold(base, epoch)
    return numba_shuffle.permutations(keys[words.tobytes(), epoch], n)

  return order


def main() -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--examples", type=int, default=100_000)
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args()
  n, runs, epochs = args.examples, 8, 4
  start = time.perf_counter()
  import _numba_shuffle as numba_shuffle
  numba_shuffle.permutations(jax.random.key(0), 10)
  print(f"Numba shuffle start-up (import, cached compiled code): {time.perf_counter() - start:.2f} s")

  words = _epoch.key_words(jax.random.split(jax.random.key(3), runs))
  for w in (words[:1], words):
    nb = numba_order(numba_shuffle)
    nb(w, 0, n)  # the epoch keys, once
    t_np = _median_ms(lambda: _epoch.host_order(w, 0, n), 7)
    t_nb = _median_ms(lambda: nb(w, 0, n), 7)
    print(f"shuffle of {len(w)} key(s), alone: NumPy {t_np:.1f} ms, Numba {t_nb:.1f} ms")

  rng = np.random.default_rng(0)
  x = rng.normal(size=(n, 18)).astype(np.float32)
  y = (x[:, 0] + rng.normal(size=n) > 0).astype(np.float32)
  model, tx = jp.LogisticRegression(), optax.adam(1e-3)
  step = jp.make_train_step(model.apply, jp.binary_cross_entropy, tx)
  keys = jax.random.split(jax.random.key(0), runs)
  cases = {"one run": (jp.create_train_state(jax.random.key(0), model, tx, x), False),
           f"{runs} runs, own orders": (jp.create_train_states(keys, model, tx, x), False),
           f"{runs} runs, shared order": (jp.create_train_states(keys, model, tx, x), True)}
  numpy_order = _epoch.host_order
  impls = {"numpy": numpy_order, "numba": numba_order(numba_shuffle)}
  epoch_s = {(i, c): [] for i in impls for c in cases}
  wall_s = {(i, c): [] for i in impls for c in cases}
  try:
    for _ in range(args.repeats):
      for impl, order in impls.items():
        _epoch.host_order = order
        for c, (state, shared) in cases.items():
          begin = time.perf_counter()
          _, hist = jp.fit(state, step, x, y, key=jax.random.key(1), epochs=epochs, batch_size=128,
                           shared_order=shared)
          wall_s[impl, c].append(time.perf_counter() - begin)
          epoch_s[impl, c].append(statistics.median(hist["epoch_seconds"][1:]))
  finally:
    _epoch.host_order = numpy_order
  out = {}
  for c in cases:
    e = {i: 1e3 * statistics.median(epoch_s[i, c]) for i in impls}
    w = {i: statistics.median(wall_s[i, c]) for i in impls}
    out[c] = {"epoch_ms": e, "fit_s": w}
    print(f"{c}: median epoch NumPy {e['numpy']:.1f} ms, Numba {e['numba']:.1f} ms; "
          f"fit ({epochs} epochs, compile included) NumPy {w['numpy']:.2f} s, Numba {w['numba']:.2f} s")
  return out


if __name__ == "__main__":
  main()
