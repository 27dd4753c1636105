"""``fit``'s epoch shuffle on the host against the former one drawn on the device.

``fit`` orders every epoch by ``jax.random.permutation``. Now (``jaxphys._shuffle``)
only the key splits run on the device, before the epoch is dispatched; the threefry
bits and the stable sorts run in Numba while the epoch runs. Before, the bits were drawn
by ``jax.random`` (an XLA program, which waits for the running epoch) and sorted with
NumPy. Both give the same orders bit for bit (checked here, and the losses). Times: the
shuffle alone for 1 and 8 keys, and ``fit``'s median epoch for the sweep case of
``training.py`` (logistic regression, 100,000 SUSY-shaped events, batch 128; one run,
8 vmapped runs in their own orders and in a shared order), the two implementations
alternated ``--repeats`` times in one process.

    python benchmarks/shuffle.py [--examples 100000] [--repeats 6]
"""

from __future__ import annotations

import argparse
import functools
import statistics

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxphys as jp
from jaxphys import _shuffle
from training import _timed_epochs


@functools.partial(jax.jit, static_argnums=1)
def _device_round(keys, n: int):
  """One round of the former shuffle: the next keys and ``(K, n)`` words, on the device."""
  pairs = jax.vmap(jax.random.split)(keys)
  return pairs[:, 0], jax.vmap(lambda k: jax.random.bits(k, (n,), jnp.uint32))(pairs[:, 1])


def former_permutations(keys, n: int) -> np.ndarray:
  """The former ``fit`` shuffle of ``(K,)`` keys: XLA's bits, NumPy's sort of
  (word, position) pairs (a stable argsort), runs on parallel host threads."""
  keys = jax.vmap(lambda k: jax.random.split(k)[0])(keys)
  positions = np.arange(n, dtype=np.uint64)
  orders = np.tile(np.arange(n, dtype=np.int32), (len(keys), 1))
  for _ in range(_shuffle.num_rounds(n)):
    keys, words = _device_round(keys, n)
    words = np.asarray(words).astype(np.uint64) << np.uint64(32)

    def one(r):
      orders[r] = orders[r][np.sort(words[r] | positions) & np.uint64(0xFFFFFFFF)]

    list(_shuffle._host_pool().map(one, range(len(orders))))
  return orders


def former_start(key, n: int):
  """The former shuffle behind ``_shuffle.start``'s interface: all of it when called."""
  batch = jnp.ndim(key) == 1  # typed keys: (K,) for K runs, () for one

  def finish() -> np.ndarray:
    orders = former_permutations(key if batch else key[None], n)
    return orders if batch else orders[0]

  return finish


def _median_ms(fn, repeats: int) -> float:
  """Median milliseconds of ``repeats`` calls after an untimed one."""
  return 1e3 * statistics.median(_timed_epochs(fn, repeats))


def main(argv=None) -> dict:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--examples", type=int, default=100_000)
  ap.add_argument("--repeats", type=int, default=6)
  args = ap.parse_args(argv)
  n, runs = args.examples, 8
  print(f"jax {jax.__version__} on {jax.devices()[0].platform}; {n:,} examples, "
        f"{args.repeats} alternated repetitions")

  keys = jax.random.split(jax.random.key(3), runs)
  for k in (keys[:1], keys):
    np.testing.assert_array_equal(_shuffle.permutations(k, n), former_permutations(k, n))
    t_new = _median_ms(lambda: _shuffle.permutations(k, n), 7)
    t_old = _median_ms(lambda: former_permutations(k, n), 7)
    print(f"shuffle of {len(k)} key(s), alone: host {t_new:.1f} ms, former {t_old:.1f} ms")

  rng = np.random.default_rng(0)
  x = rng.normal(size=(n, 18)).astype(np.float32)
  y = (x[:, 0] + rng.normal(size=n) > 0).astype(np.float32)
  model, tx = jp.LogisticRegression(), optax.adam(1e-3)
  step = jp.make_train_step(model.apply, jp.binary_cross_entropy, tx)
  cases = {"one run": (jp.create_train_state(jax.random.key(0), model, tx, x), False),
           f"{runs} runs, own orders": (jp.create_train_states(keys, model, tx, x), False),
           f"{runs} runs, shared order": (jp.create_train_states(keys, model, tx, x), True)}
  current = _shuffle.start
  times = {(impl, c): [] for impl in ("host", "former") for c in cases}
  losses = {}
  try:
    for _ in range(args.repeats):
      for impl, start in (("host", current), ("former", former_start)):
        _shuffle.start = start
        for c, (state, shared) in cases.items():
          _, hist = jp.fit(state, step, x, y, key=jax.random.key(1), epochs=6, batch_size=128,
                           progress=False, shared_order=shared)
          times[impl, c].append(statistics.median(hist["epoch_seconds"][1:]))
          losses[impl, c] = hist["train_loss"]
  finally:
    _shuffle.start = current
  out = {}
  for c in cases:
    assert np.array_equal(losses["host", c], losses["former", c]), c
    new, old = (1e3 * statistics.median(times[impl, c]) for impl in ("host", "former"))
    out[c] = {"host_ms": new, "former_ms": old}
    print(f"fit epoch, {c}: host shuffle {new:.1f} ms, former {old:.1f} ms -> {old / new:.2f}x faster "
          f"(same losses)")
  for impl in ("host", "former"):
    one = out["one run"][f"{impl}_ms"]
    print(f"{impl}: {runs} vmapped runs vs {runs} in sequence: own orders "
          f"{runs * one / out[f'{runs} runs, own orders'][f'{impl}_ms']:.2f}x, shared order "
          f"{runs * one / out[f'{runs} runs, shared order'][f'{impl}_ms']:.2f}x")
  return out


if __name__ == "__main__":
  main()
