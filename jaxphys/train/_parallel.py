"""Data parallelism: one mesh axis ``"batch"``; data and state replicated, batches split."""

from __future__ import annotations

import math
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def data_parallel_mesh(devices: Optional[Sequence[jax.Device]] = None, batch_size: Optional[int] = None) -> Mesh:
  """A one-axis mesh named ``"batch"`` over ``devices`` (default: ``jax.local_devices()``).

  With ``batch_size``, only the first ``d`` devices, ``d`` the largest count that
  divides ``batch_size``. Multi-host: call ``jax.distributed.initialize()`` in every
  process, load the same data in each, and pass ``data_parallel_mesh(jax.devices())``
  to :func:`~jaxphys.fit`; the data and state are then replicated on every host's devices.

  >>> data_parallel_mesh(batch_size=32).axis_names
  ('batch',)
  """
  devices = list(jax.local_devices() if devices is None else devices)
  if not devices:
    raise ValueError("data_parallel_mesh: no devices")
  if batch_size is not None:
    devices = devices[:max(d for d in range(1, len(devices) + 1) if batch_size % d == 0)]
  return Mesh(np.array(devices), ("batch",))


def placement(mesh: Optional[Mesh], *batch_sizes: int):
  """``(replicate, split)`` for ``mesh``: ``replicate(tree)`` puts arrays on every device,
  ``split(tree)`` (inside compiled code) constrains a batch's leading axis to the mesh."""
  if mesh is None:
    mesh = data_parallel_mesh(batch_size=math.gcd(*batch_sizes))
  if "batch" not in mesh.axis_names:
    raise ValueError(f"mesh needs an axis named 'batch', got axes {mesh.axis_names}")
  parts = mesh.shape["batch"]
  for b in batch_sizes:
    if b % parts:
      raise ValueError(f"batch size {b} is not divisible by the {parts} devices of the mesh's 'batch' axis")
  replicated = NamedSharding(mesh, PartitionSpec())
  batch = NamedSharding(mesh, PartitionSpec("batch"))

  def put(a):
    if mesh.is_multi_process:  # every process holds all of ``a``; build the global array
      if jax.dtypes.issubdtype(jnp.result_type(a), jax.dtypes.prng_key):
        return jax.random.wrap_key_data(put(jax.random.key_data(a)), impl=jax.random.key_impl(a))
      return jax.make_array_from_callback(np.shape(a), replicated, lambda idx: np.asarray(a)[idx])
    return jax.device_put(a, replicated)

  def replicate(tree):
    return jax.tree_util.tree_map(put, tree)

  def split(tree):
    return jax.tree_util.tree_map(lambda a: jax.lax.with_sharding_constraint(a, batch), tree)

  return replicate, split
