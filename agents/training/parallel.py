"""Data parallelism over the devices of every process.

Training is one SPMD program over a 1-D :class:`jax.sharding.Mesh` (axis
``"batch"``) of every device of every process:

* the self-play environments (``actor``, ``[N, ...]``) and the replay
  buffer (``[C, N, ...]``) are sharded on their environment axis, so every
  device plays, searches and stores its own ``N / D`` environments;
* parameters, optimizer state, rng key and counters are replicated;
* the batch is sharded too (each device samples its ``batch_size / D``
  windows from its own replay shard), and the gradient's mean over the
  batch is a ``pmean`` (all-reduce) inside the one jitted iteration.

The iteration is a ``shard_map`` over the mesh (see
:func:`agents.training.step.make_train_step`): every device runs its share
of the run's ``config.num_shards`` shards, each with its own random stream,
so that the run does not depend on the device count: D devices compute the
same iteration as one (to float rounding), for any D dividing the shards.
Several processes: :mod:`agents.runs.processes`.
"""
from __future__ import annotations

from typing import Any, Optional

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from agents.runs.processes import ParallelError

AXIS = "batch"


def check_devices(config, num_devices: int) -> None:
  """Raises ParallelError unless the run's shards (``config.num_shards``)
  divide over ``num_devices``."""
  if config.num_shards % num_devices:
    raise ParallelError(
        f"this run's environments are cut into {config.num_shards} shards, "
        f"which do not divide over {num_devices} devices: use a number of "
        f"devices dividing {config.num_shards} (--devices)")


def make_mesh(num_devices: Optional[int] = None) -> Mesh:
  """A 1-D mesh of the first ``num_devices`` devices (default: all devices
  of all processes)."""
  devices = jax.devices()
  if num_devices is None:
    num_devices = len(devices)
  if not 1 <= num_devices <= len(devices):
    raise ParallelError(f"--devices must be in 1..{len(devices)} (the "
                        f"devices JAX sees), got {num_devices}")
  if jax.process_count() > 1 and num_devices != len(devices):
    raise ParallelError(
        f"--devices {num_devices}: with several processes the mesh spans "
        f"every device of every process ({len(devices)})")
  return Mesh(np.array(devices[:num_devices]), (AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  """The sharding of an array every device holds whole."""
  return NamedSharding(mesh, P())


def state_specs(state: Any) -> Any:
  """PartitionSpecs of a :class:`~agents.training.state.TrainState` (or
  its abstract shape): buffer data on its environment axis 1, actors on
  axis 0, everything else replicated."""
  def on(axis):
    return lambda _: P(*([None] * axis + [AXIS]))
  return state._replace(
      params=jax.tree.map(lambda _: P(), state.params),
      opt_state=jax.tree.map(lambda _: P(), state.opt_state),
      buffer=state.buffer.replace(
          data=jax.tree.map(on(1), state.buffer.data), count=P()),
      actor=jax.tree.map(on(0), state.actor),
      rng_key=P(), iteration=P())


def state_shardings(state: Any, mesh: Mesh) -> Any:
  """The ``NamedSharding``s of :func:`state_specs` on ``mesh``."""
  return jax.tree.map(lambda spec: NamedSharding(mesh, spec),
                      state_specs(state),
                      is_leaf=lambda x: isinstance(x, P))
