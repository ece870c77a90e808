"""Data parallelism over devices and hosts, on JAX's own runtime.

Training is one SPMD program over a 1-D :class:`jax.sharding.Mesh` (axis
``"batch"``) of every device of every process:

* the self-play environments (``actor``, ``[N, ...]``) and the replay
  buffer (``[C, N, ...]``) are sharded on their environment axis, so every
  device plays, searches and stores its own ``N / D`` environments;
* parameters, optimizer state, rng key and counters are replicated;
* the learner's batch is sharded too (each device samples its
  ``batch_size / D`` windows from its own replay shard), and the gradient's
  mean over the batch is a ``pmean`` (all-reduce) inside the one jitted
  iteration.

The iteration is a ``shard_map`` over the mesh (see
``learner.make_train_step``): every device runs its share of the run's
``config.num_shards`` shards, each with its own random stream, so that the
run does not depend on the device count: D devices compute the same
iteration as one (to float rounding), for any D dividing the shards.

Several processes: :func:`initialize` calls ``jax.distributed.initialize``
(every process runs the same command).
"""
from __future__ import annotations

import os
import sys
from typing import Any, Optional, Tuple

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXIS = "batch"
# Seconds a process waits for its peers: at start (all must arrive), and
# after one stops heartbeating (the others are then stopped with an error).
DEFAULT_TIMEOUT_S = 60


class ParallelError(Exception):
  """Bad device or process settings."""


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
  return NamedSharding(mesh, P())


def state_specs(state: Any) -> Any:
  """PartitionSpecs of a ``learner.TrainState`` (or its abstract shape):
  buffer data on its environment axis 1, actors on axis 0, everything else
  replicated."""
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
  return jax.tree.map(lambda spec: NamedSharding(mesh, spec),
                      state_specs(state),
                      is_leaf=lambda x: isinstance(x, P))


def is_main_process() -> bool:
  return jax.process_index() == 0


def fetch(tree: Any) -> Any:
  """A host (numpy) copy of a tree of replicated arrays, in any process."""
  def get(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      x = x.addressable_data(0)
    return np.asarray(x)
  return jax.tree.map(get, tree)


# ------------------------------------------------------------ several hosts
def initialize(coordinator: Optional[str] = None,
               num_processes: Optional[int] = None,
               process_id: Optional[int] = None,
               timeout_s: int = DEFAULT_TIMEOUT_S) -> bool:
  """Joins a multi-process run if one is asked for; returns whether it did.

  Asked for by the arguments, else by the environment: ``JAX_COORDINATOR_
  ADDRESS``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID`` (our names, read
  here), or a cluster JAX detects itself (SLURM: ``SLURM_JOB_ID`` with
  several tasks; Open MPI: ``OMPI_COMM_WORLD_SIZE`` > 1; Cloud TPU pod
  slices). A process that does not arrive within ``timeout_s`` seconds,
  or stops heartbeating for about as long, stops the others with an error.
  Must run before anything touches a JAX device.
  """
  env = os.environ
  coordinator = coordinator or env.get("JAX_COORDINATOR_ADDRESS")
  if num_processes is None and env.get("JAX_NUM_PROCESSES"):
    num_processes = int(env["JAX_NUM_PROCESSES"])
  if process_id is None and env.get("JAX_PROCESS_ID"):
    process_id = int(env["JAX_PROCESS_ID"])
  cluster = (int(env.get("SLURM_NTASKS", "1")) > 1
             or int(env.get("OMPI_COMM_WORLD_SIZE", "1")) > 1)
  if coordinator is None and num_processes is None and not cluster:
    return False
  if coordinator is not None and (num_processes is None
                                  or process_id is None) and not cluster:
    raise ParallelError("--coordinator needs --num-processes and "
                        "--process-id (or JAX_NUM_PROCESSES and "
                        "JAX_PROCESS_ID)")
  if num_processes is not None and process_id is not None and not (
      0 <= process_id < num_processes):
    raise ParallelError(f"--process-id must be in 0..{num_processes - 1}, "
                        f"got {process_id}")
  # CPU devices of several processes talk through gloo (unused on GPU/TPU).
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  # A missing or dead peer makes JAX's runtime abort this process (SIGABRT,
  # with its own message), not raise: say first what we are waiting for.
  print(f"Joining a run of {num_processes or 'detected'} processes at "
        f"{coordinator or 'the detected coordinator'} as process "
        f"{'detected' if process_id is None else process_id}: waiting up to "
        f"{timeout_s} s for all of them (--timeout)", file=sys.stderr,
        flush=True)
  try:
    jax.distributed.initialize(
        coordinator_address=coordinator, num_processes=num_processes,
        process_id=process_id, initialization_timeout=timeout_s,
        heartbeat_timeout_seconds=timeout_s,
        shutdown_timeout_seconds=timeout_s)
  except Exception as e:  # pylint: disable=broad-except
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    raise ParallelError(
        f"could not join the run of {num_processes or '?'} processes at "
        f"{coordinator or 'the detected coordinator'} within {timeout_s} s "
        f"(--timeout): a process missing, or a wrong address? ({first})"
    ) from e
  return True


def agree(flags: Tuple[bool, ...]) -> Tuple[bool, ...]:
  """Process 0's ``flags``, in every process (so that all of them take the
  same branches, e.g. stop or save at the same iteration)."""
  if jax.process_count() == 1:
    return tuple(bool(f) for f in flags)
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  out = multihost_utils.broadcast_one_to_all(np.array(flags, np.bool_))
  return tuple(bool(f) for f in np.asarray(out))


def barrier(name: str) -> None:
  """Waits for every process (a no-op in a single-process run)."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(name)
