"""Checkpoints of a sharded training state through orbax-checkpoint.

A run keeps its checkpoints in ``<run>/checkpoints/<iteration>/`` (the two
latest). Every process writes and reads only its own shards of the state;
each checkpoint also holds ``meta`` (JSON: the caller's metadata, the
state's leaf paths, shapes and dtypes, and a digest of every leaf).

Guarantees:

* a crash at any moment leaves the previous checkpoint usable: orbax writes
  a step into a temporary directory and renames it when complete, and only
  complete steps are ever listed or restored;
* a corrupted, truncated or mismatched checkpoint is refused with a
  :class:`CheckpointError`, and nothing is written: orbax does not checksum
  the data, so :func:`digest` (a position-weighted sum of each leaf's 32-bit
  words modulo 2^32, which changes with any single flipped bit) is stored at
  save and checked at restore;
* a checkpoint restores onto any mesh: the arrays are global, so a run
  saved on D devices resumes on D' devices with each device reading the
  environment columns it now owns.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional, Tuple

import jax
import jax.numpy as jnp

from agents.runs.processes import fetch

FORMAT = "batched-mcts-orbax-checkpoint/1"
KEEP = 2


class CheckpointError(Exception):
  """A checkpoint is missing, corrupted or does not match this run."""


def _manager(directory: str, create: bool):
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  return ocp.CheckpointManager(
      os.path.abspath(directory),
      options=ocp.CheckpointManagerOptions(
          max_to_keep=KEEP, create=create,
          enable_async_checkpointing=False))


def _words(x: jax.Array) -> jax.Array:
  """The leaf's contents as uint32 words (one per element)."""
  if x.dtype == jnp.bool_ or jnp.dtype(x.dtype).itemsize == 1:
    return x.astype(jnp.uint32)
  if jnp.dtype(x.dtype).itemsize == 2:
    return jax.lax.bitcast_convert_type(x, jnp.uint16).astype(jnp.uint32)
  if jnp.dtype(x.dtype).itemsize == 4:
    return jax.lax.bitcast_convert_type(x, jnp.uint32)
  raise CheckpointError(f"cannot digest {x.dtype} arrays")


@jax.jit
def _digest(leaves):
  out = []
  for x in leaves:
    w = _words(x).reshape(-1)
    pos = jnp.arange(w.shape[0], dtype=jnp.uint32)
    weight = pos * jnp.uint32(2654435761) | jnp.uint32(1)  # Odd weights.
    out.append(jnp.sum(w * weight, dtype=jnp.uint32))
  return jnp.stack(out) if out else jnp.zeros((0,), jnp.uint32)


def digest(state: Any) -> list:
  """One uint32 per leaf: ``sum_i word_i * (i * 2654435761 | 1) mod 2^32``.

  A single flipped bit changes its word by +-2^k and the sum by an odd
  multiple of 2^k, never 0 mod 2^32; computed on the devices (each on its
  shards, then summed), identical in every process.
  """
  return [int(v) for v in fetch(_digest(
      jax.tree_util.tree_leaves(state)))]


def _describe(state: Any) -> Dict[str, Any]:
  path_leaves = jax.tree_util.tree_flatten_with_path(state)[0]
  return dict(paths=[jax.tree_util.keystr(p) for p, _ in path_leaves],
              shapes=[list(x.shape) for _, x in path_leaves],
              dtypes=[str(x.dtype) for _, x in path_leaves])


def latest_step(directory: str) -> Optional[int]:
  """The iteration of the latest complete checkpoint in ``directory``, or
  None."""
  if not os.path.isdir(directory):
    return None
  return _manager(directory, create=False).latest_step()


def save(directory: str, state: Any, metadata: Dict[str, Any]) -> None:
  """Saves ``state`` (global, possibly sharded arrays) as step
  ``metadata["iteration"]``; every process must call it."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  meta = dict(format=FORMAT, metadata=metadata, digest=digest(state),
              **_describe(state))
  manager = _manager(directory, create=True)
  step = int(metadata["iteration"])
  if step in manager.all_steps():
    return  # Already saved (e.g. a final save right after a periodic one).
  manager.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))
  manager.wait_until_finished()
  manager.close()


def restore(directory: str, target: Any) -> Tuple[Any, Dict[str, Any]]:
  """``(state, metadata)`` of the latest checkpoint in ``directory``.

  ``target``: a pytree of ``jax.ShapeDtypeStruct`` with shardings (where
  every process's shards go). Raises CheckpointError when there is none, or
  it does not match ``target``, or its digest does not match its data.
  """
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  step = latest_step(directory)
  if step is None:
    raise CheckpointError(f"no checkpoint in {directory}")
  where = os.path.join(directory, str(step))
  manager = _manager(directory, create=False)
  try:
    meta = manager.restore(step, args=ocp.args.Composite(
        meta=ocp.args.JsonRestore()))["meta"]
  except Exception as e:  # pylint: disable=broad-except
    raise CheckpointError(f"checkpoint {where} is corrupted or unreadable "
                          f"({type(e).__name__}: {e})") from e
  if not isinstance(meta, dict) or meta.get("format") != FORMAT:
    raise CheckpointError(f"checkpoint {where} is corrupted or not ours "
                          "(bad meta)")
  expected = _describe(target)
  for key in ("paths", "shapes", "dtypes"):
    if meta.get(key) != expected[key]:
      diff = next(((p, s, e) for p, s, e in zip(
          expected["paths"], meta.get(key) or [], expected[key]) if s != e),
                  None)
      raise CheckpointError(
          f"checkpoint {where} does not match this run's state ({key} "
          f"differ" + (f", e.g. {diff[0]}: saved {diff[1]}, expected "
                       f"{diff[2]}" if diff else "") + ")")
  try:
    state = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target)))["state"]
  except Exception as e:  # pylint: disable=broad-except
    raise CheckpointError(f"checkpoint {where} is corrupted or unreadable "
                          f"({type(e).__name__}: {e})") from e
  manager.close()
  if digest(state) != meta["digest"]:
    raise CheckpointError(f"checkpoint {where} is corrupted (digest "
                          "mismatch: its data changed after it was written)")
  return state, meta["metadata"]


def abstract_target(abstract_state: Any, shardings: Any) -> Any:
  """``jax.ShapeDtypeStruct``s of ``abstract_state`` placed by
  ``shardings`` (the target of :func:`restore`)."""
  return jax.tree.map(
      lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
      abstract_state, shardings)
