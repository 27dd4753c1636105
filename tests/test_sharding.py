"""Data-parallel training over 8 (simulated) CPU devices, and over two processes with
``jax.distributed``, gives the single-device result.

The device count is fixed when JAX starts, so the checks run in fresh interpreters with
``XLA_FLAGS=--xla_force_host_platform_device_count=N``.
"""

import os
import subprocess
import sys
import textwrap

# The training every check compares: data, model and steps at module level, then
# ``train(mesh, runs, loop)`` -> ``(state, history)``.
CASE = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np, optax
    import jaxphys as jp

    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] ** 2 > 1).astype(np.int32)
    model, tx = jp.MLP((16, 2), activation="tanh"), optax.adam(1e-2)
    step, ev = jp.make_train_step(model.apply, jp.softmax_cross_entropy, tx), jp.make_eval_step(model.apply, jp.softmax_cross_entropy)

    from jaxphys.train import _backend
    _plan = _backend.plan

    def train(mesh, runs=None, loop="scan"):
      _backend.plan = lambda jaxpr: (loop, _plan(jaxpr)[1])  # the backend's loop, forced
      if runs:
        state = jp.create_train_states(jax.random.split(jax.random.key(0), runs), model, tx, x)
      else:
        state = jp.create_train_state(jax.random.key(0), model, tx, x)
      return jp.fit(state, step, x, y, key=jax.random.key(1), epochs=3, batch_size=64,
                    eval_step=ev, eval_data=(x, y), eval_batch_size=128, mesh=mesh)
""")

SCRIPT = CASE + textwrap.dedent("""
    from jaxphys.train._parallel import placement as _placement

    assert jax.device_count() == 8, jax.devices()
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
             epochs=1, batch_size=12, mesh=jp.data_parallel_mesh())
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


CASES = ((None, "scan"), (2, "python"))

# One process of two: joins the cluster before any JAX computation, trains on a mesh over
# all four devices, saves the parameters it ends with.
WORKER = textwrap.dedent("""
    import sys
    import jax
    process, port, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2,
                               process_id=process, initialization_timeout=120)
""") + CASE + textwrap.dedent(f"""
    assert jax.device_count() == 4 and jax.local_device_count() == 2, jax.devices()
    saved = {{}}
    for runs, loop in {CASES!r}:
      state, history = train(jp.data_parallel_mesh(jax.devices()), runs, loop)
      for i, leaf in enumerate(jax.tree_util.tree_leaves(state.params)):
        saved[f"{{runs}}_{{loop}}_{{i}}"] = np.asarray(leaf)
      saved[f"{{runs}}_{{loop}}_eval_loss"] = history["eval_loss"]
    np.savez(out, **saved)
""")


def test_two_processes_match_one_device(tmp_path):
  # Multi-host as README describes it: jax.distributed over two processes of two CPU
  # devices each (collectives through gloo), one mesh over all four devices. Every
  # process ends with the single-device parameters.
  import socket

  import jax
  import numpy as np

  import jaxphys as jp
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = str(s.getsockname()[1])
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
  outs = [tmp_path / f"process{p}.npz" for p in (0, 1)]
  procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(p), port, str(outs[p])], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for p in (0, 1)]
  for p in procs:
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-3000:]

  namespace = {}
  exec(CASE, namespace)  # the same training, here on one device
  for runs, loop in CASES:
    state, history = namespace["train"](jp.data_parallel_mesh(jax.devices()[:1]), runs, loop)
    for out in outs:
      got = np.load(out, allow_pickle=False)
      for i, leaf in enumerate(jax.tree_util.tree_leaves(state.params)):
        np.testing.assert_allclose(got[f"{runs}_{loop}_{i}"], leaf, rtol=2e-5, atol=2e-6)
      np.testing.assert_allclose(got[f"{runs}_{loop}_eval_loss"], history["eval_loss"], rtol=1e-5)
