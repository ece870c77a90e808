"""MuZero Reanalyse (Schrittwieser et al. 2021, "Online and Offline
Reinforcement Learning by Planning with a Learned Model"): fresh targets for
replayed windows from new searches with the current parameters.

For a reanalysed window starting at replay step ``t`` (K = unroll steps,
n = td steps), :func:`agents.training.batch.make_batch` searches at
``2 (K+1)`` stored positions, all in ONE batched search call:

* the unroll positions ``t+k``, ``k = 0..K``: their ``action_weights``
  replace the stored policy targets;
* the bootstrap positions ``t+k+i_k`` of the n-step value targets
  (:func:`agents.training.targets.bootstrap_index`): their root values
  replace the stored search values in ``z_{t+k} = sum_{i<i_k} d^i r_{t+k+i} +
  d^{i_k} v_{t+k+i_k}``.

When no value target can bootstrap
(:func:`agents.training.targets.can_bootstrap`:
``n`` >= the game's longest episode and no exploration moves, e.g. catch
by default), the value targets are the episodes' outcomes and only the
``K+1`` unroll positions are searched.

The search is self-play's (``agent.act``: same policy, simulations,
considered actions and root noise) on the stored observation with the
stored legal moves as the root's invalid-action mask. It needs only an
observation, so only MuZero (learned model) reanalyses.
"""
from __future__ import annotations

from typing import Any, Dict, NamedTuple

import jax
import jax.numpy as jnp

from agents.config import Config, unroll_steps
from agents.training import replay
from agents.training.targets import (bootstrap_index, can_bootstrap,
                                     compute_targets)


class StoredPosition(NamedTuple):
  """What a MuZero search needs of a position (``agent.act``'s ``states``):
  ``observation [M, ...]`` and ``legal_action_mask [M, A]`` (bool)."""
  observation: Any
  legal_action_mask: Any


def search_offsets(boot_idx: jax.Array, bootstraps: bool = True) -> jax.Array:
  """Window offsets to search at, ``[R, 2(K+1)]``: the unroll positions
  ``0..K`` then the bootstrap positions ``boot_idx [R, K+1]``; or, when no
  value target can bootstrap (``bootstraps`` False), ``[R, K+1]``: the
  unroll positions alone."""
  rows, k1 = boot_idx.shape
  unroll = jnp.broadcast_to(jnp.arange(k1, dtype=boot_idx.dtype), (rows, k1))
  if not bootstraps:
    return unroll
  return jnp.concatenate([unroll, boot_idx], axis=1)


def search_key(batch_key: jax.Array) -> jax.Array:
  """The reanalyse search's key, derived from the key that sampled the
  batch (which ``replay.sample`` uses whole, so a batch without reanalyse
  draws exactly what it did before)."""
  return jax.random.fold_in(batch_key, 1)


def fresh_search(agent, params, key: jax.Array, observation: Any,
                 legal: jax.Array):
  """One search over every position: ``observation [R, M, ...]``, ``legal
  [R, M, A]`` -> ``(action_weights [R, M, A], root value [R, M])`` with the
  current ``params`` (no gradient flows into them)."""
  rows, m = legal.shape[:2]
  flat = StoredPosition(
      observation=observation.reshape((rows * m,) + observation.shape[2:]),
      legal_action_mask=legal.reshape((rows * m,) + legal.shape[2:]))
  out = agent.act(jax.lax.stop_gradient(params), key, flat)
  weights = out.action_weights.reshape((rows, m) + out.action_weights.shape[1:])
  value = out.search_tree.summary().value.reshape(rows, m)
  return weights, value


def target_changes(stored: Dict[str, jax.Array],
                   fresh: Dict[str, jax.Array]) -> Dict[str, jax.Array]:
  """How much reanalyse moved the targets of its rows, over the unroll
  steps in the episode (``alive [R, K+1]``): the mean absolute change of
  the value target (``value [R, K+1]``) and the mean total-variation
  distance ``0.5 sum_a |p - p'|`` of the policy targets (``policy [R, K+1,
  A]``). Scalars."""
  alive = stored["alive"].astype(jnp.float32)
  count = jnp.maximum(jnp.sum(alive), 1.0)
  value = jnp.abs(fresh["value"] - stored["value"])
  tv = 0.5 * jnp.sum(jnp.abs(fresh["policy"] - stored["policy"]), axis=-1)
  return dict(reanalyse_value_change=jnp.sum(value * alive) / count,
              reanalyse_policy_tv=jnp.sum(tv * alive) / count)


def reanalysed_targets(config: Config, env, agent, params, key,
                        buffer: replay.ReplayBuffer, start, env_idx, window):
  """Fresh targets ``[R, K+1, ...]`` (as
  :func:`~agents.training.targets.compute_targets`) for the windows ``[R,
  L, ...]`` at ``start [R]``, ``env_idx [R]``: policy = the search's
  ``action_weights`` at t+k, value bootstrapping from the search's root
  value at :func:`~agents.training.targets.bootstrap_index`; one search
  call over the ``2 R (K+1)`` positions (``R (K+1)`` where nothing can
  bootstrap)."""
  K = unroll_steps(config)
  boots = can_bootstrap(config, env)
  boot_idx = bootstrap_index(config, env, window)             # [R, K+1]
  offsets = search_offsets(boot_idx, boots)
  data = buffer.data
  found = replay.gather(buffer, start, env_idx, offsets, dict(
      observation=data["observation"], legal=data["legal"]))
  policy, value = fresh_search(
      agent, params, key, found["observation"], found["legal"])
  # Without bootstraps the targets never read boot_value: zeros stand in.
  boot_value = (value[:, K + 1:] if boots
                else jnp.zeros(boot_idx.shape, value.dtype))
  fresh = compute_targets(config, env, window, boot_value=boot_value,
                          root_value=value[:, :K + 1])
  fresh["policy"] = policy[:, :K + 1]
  return fresh
