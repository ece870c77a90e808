"""The processes of a run: every process runs the same command, on JAX's
own runtime.

:func:`initialize` joins a multi-process run (``jax.distributed``), with a
bounded wait for peers: a dead or missing peer stops the others with an
error. Process 0 alone writes the run's files (:func:`is_main_process`);
:func:`agree` makes every process take process 0's decisions (stop, save)
and stop on a signal any of them received; :func:`barrier` waits for all
of them; :func:`fetch` copies replicated arrays to the host in any process.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Optional, Tuple

import jax
import numpy as np

# Seconds a process waits for its peers: at start (all must arrive), and
# after one stops heartbeating (the others are then stopped with an error).
DEFAULT_TIMEOUT_S = 60


class ParallelError(Exception):
  """Bad device or process settings."""


def is_main_process() -> bool:
  """Whether this is process 0, the one that writes the run's files."""
  return jax.process_index() == 0


def fetch(tree: Any) -> Any:
  """A host (numpy) copy of a tree of replicated arrays, in any process."""
  def get(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      x = x.addressable_data(0)
    return np.asarray(x)
  return jax.tree.map(get, tree)


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


def agree(flags: Tuple[bool, ...], signum: int = 0
          ) -> Tuple[Tuple[bool, ...], int]:
  """``(process 0's flags, the largest signum of any process)``, the same in
  every process, in one collective: decisions on process 0's clock (save,
  out of time) and a stop that any process may ask for (a signal may reach
  one process only, or each at another time), so that all of them take the
  same branches (stop or save at the same iteration)."""
  row = np.array([int(signum)] + [int(bool(f)) for f in flags], np.int32)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    rows = np.asarray(multihost_utils.process_allgather(row))
    row = np.concatenate([rows[:, :1].max(axis=0), rows[0, 1:]])
  return tuple(bool(f) for f in row[1:]), int(row[0])


def barrier(name: str) -> None:
  """Waits for every process (a no-op in a single-process run)."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(name)
