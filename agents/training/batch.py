"""Batches of replayed windows for the loss, with MuZero Reanalyse.

A batch is ``batch_size`` windows sampled uniformly from the replay buffer:
the observation at the window's start, the actions played, and the
targets of :mod:`agents.training.targets`; with reanalyse
(``config.reanalyse_fraction``, :mod:`agents.training.reanalyse`) its first
rows get fresh targets from new searches with the current parameters;
with ``config.mirror`` each window is then reflected by the game's
symmetry with probability 1/2 (:mod:`agents.training.augment`).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from agents.config import Config, unroll_steps
from agents.training import augment
from agents.training import reanalyse
from agents.training import replay
from agents.training.targets import compute_targets, window_length

# The stream of ``make_batch``'s key that chooses the windows to reflect.
MIRROR_STREAM = 0x6d6972


def make_batch(config: Config, env, buffer: replay.ReplayBuffer, key,
               agent=None, params=None, rows: int = 0,
               next_observations: bool = False):
  """A batch of ``config.batch_size`` windows sampled with ``key``:
  ``observation [B, ...]``, ``actions [B, K]``, ``targets`` (see
  :func:`~agents.training.targets.compute_targets`), and with
  ``next_observations`` (a loss that reads them: the agent's
  ``reads_next_observations``) ``next_observations [B, K, ...]``
  (``o_{t+1..t+K}``; those past the end of the episode of ``t`` belong to
  the next one, masked by ``alive``).

  ``rows`` > 0 (MuZero Reanalyse, :mod:`agents.training.reanalyse`): the
  first ``rows`` windows (a uniform sample, like all rows) get fresh policy and
  value targets from one search of ``agent`` with ``params`` (key
  ``reanalyse.search_key(key)``) at their unroll and bootstrap positions;
  the other rows keep the stored targets. The batch then also holds
  ``reanalyse``, the scalar :func:`reanalyse.target_changes`.
  """
  length = window_length(config, env)
  K = unroll_steps(config)
  start, env_idx = replay.sample(buffer, key, config.batch_size, length)
  data = buffer.data
  window = replay.window(buffer, start, env_idx, length, dict(
      reward=data["reward"], done=data["done"], value=data["value"],
      explored=data["explored"]))
  window.update(replay.window(buffer, start, env_idx, K + 1, dict(
      policy=data["policy"], action=data["action"])))
  num_obs = K + 1 if next_observations else 1
  obs = replay.window(buffer, start, env_idx, num_obs, data["observation"])
  targets = compute_targets(config, env, window)
  batch = dict(observation=obs[:, 0], actions=window["action"][:, :K],
               targets=targets)
  if rows > 0:
    head = jax.tree.map(lambda x: x[:rows], window)
    fresh = reanalyse.reanalysed_targets(
        config, env, agent, params, reanalyse.search_key(key), buffer,
        start[:rows], env_idx[:rows], head)
    changes = reanalyse.target_changes(
        jax.tree.map(lambda x: x[:rows], targets), fresh)
    batch["targets"] = jax.tree.map(
        lambda f, t: jnp.concatenate([f.astype(t.dtype), t[rows:]], axis=0),
        fresh, targets)
    batch["reanalyse"] = changes
  if num_obs > 1:
    batch["next_observations"] = obs[:, 1:]
  if config.mirror:
    batch = augment.reflect_half(batch, augment.check_mirror(env),
                                 jax.random.fold_in(key, MIRROR_STREAM))
  return batch
