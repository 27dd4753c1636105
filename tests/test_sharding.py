"""Data-parallel training over 8 (simulated) CPU devices gives the single-device result.

The device count is fixed when JAX starts, so the checks run in a fresh interpreter with
``XLA_FLAGS=--xla_force_host_platform_device_count=8``.
"""

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np, optax
    import jaxphys as jp
    from jaxphys.train import _placement

    assert jax.device_count() == 8, jax.devices()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] ** 2 > 1).astype(np.int32)
    model, tx = jp.MLP((16, 2), activation="tanh"), optax.adam(1e-2)
    step, ev = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx), jp.make_eval_step(model.apply, jp.softmax_cross_entropy)

    def train(mesh, runs=None, loop="scan"):
      if runs:
        state = jp.create_train_states(jax.random.split(jax.random.key(0), runs), model, tx, x)
      else:
        state = jp.create_train_state(jax.random.key(0), model, tx, x)
      return jp.fit(state, step, x, y, key=jax.random.key(1), epochs=3, batch_size=64, progress=False,
                    eval_step=ev, eval_data=(x, y), eval_batch_size=128, mesh=mesh, loop=loop)

    one = jp.data_parallel_mesh(jax.devices()[:1])
    for runs, loop in ((None, "scan"), (2, "scan"), (None, "python"), (2, "python")):
      s1, h1 = train(one, runs, loop)
      s8, h8 = train(None, runs, loop)  # default: all 8 local devices
      leaf = jax.tree_util.tree_leaves(s8.params)[0]
      assert len(leaf.sharding.device_set) == 8 and leaf.sharding.is_fully_replicated, leaf.sharding
      assert len(jax.tree_util.tree_leaves(s1.params)[0].sharding.device_set) == 1
      jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6), s1.params, s8.params)
      np.testing.assert_allclose(h1["eval_loss"], h8["eval_loss"], rtol=1e-5)
      assert np.all(h8["eval_loss"][-1] < h8["eval_loss"][0])  # it trained

    # The batch really is split: the compiled gradient sums over devices.
    replicate, split = _placement(None, 64)
    w = replicate(jnp.ones((6, 2)))
    grad = jax.jit(jax.grad(lambda w, xb: jnp.sum(split(xb) @ w)))
    hlo = grad.lower(w, replicate(jnp.asarray(x[:64]))).compile().as_text()
    assert "all-reduce" in hlo

    assert jp.data_parallel_mesh(batch_size=12).shape["batch"] == 6  # the most devices that divide 12
    try:
      jp.fit(jp.create_train_state(jax.random.key(0), model, tx, x), step, x, y, key=jax.random.key(1),
             epochs=1, batch_size=12, progress=False, mesh=jp.data_parallel_mesh())
    except ValueError as e:
      assert "batch size 12 is not divisible by the 8 devices" in str(e), e
    else:
      raise AssertionError("no error for a batch that does not split over the mesh")
    print("ok")
""")


def test_data_parallel_fit_matches_one_device():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]
