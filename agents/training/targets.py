"""Learning targets of replayed windows (pure functions of the config, the
environment and a window ``[B, L, ...]`` of ``L = K + n + 1`` steps).

For unroll step ``k = 0..K`` of a window starting at replay step ``t``:

* policy: the search's ``action_weights`` at ``t+k``;
* value: the n-step return ``z_{t+k} = sum_{i<n} d^i r_{t+k+i} +
  d^n v_{t+k+n}`` (``d`` = -1 between plies of a two-player game, the
  discount otherwise; ``v`` = the search's root value; terms past the end of
  the episode are dropped, so with ``n`` >= the episode length this is the
  final outcome from the mover's point of view); the return bootstraps
  earlier, at the first random exploration move after ``t+k``, since the
  return from there on does not follow the agent's policy; with
  ``config.root_value_mix`` = a > 0 the target is ``(1 - a) z_{t+k} + a
  q_{t+k}``, ``q`` the search's root value at t+k: the average of the two
  (a = 1/2) lowers the variance of a return that reaches the end of a long
  game ("Lessons from AlphaZero, part 4: improving the training target",
  Oracle, 2018, on Connect Four; Willemsen et al. 2021 compare such targets);
* reward: ``r_{t+k-1}`` (into unrolled state ``k``);
* terminal: whether that transition (``t+k-1 -> t+k``) ends the episode.

Unroll steps past the end of the episode are *absorbing*: value and reward
targets 0 (and no policy loss: ``alive``).
"""
from __future__ import annotations

from typing import Dict

import jax
import jax.numpy as jnp
import numpy as np

from agents.config import Config, unroll_steps


def td_steps(config: Config, env) -> int:
  """n, the steps of the value targets' returns: ``config.td_steps``, or
  the game's longest episode."""
  if config.td_steps is not None:
    return config.td_steps
  if env.max_episode_steps is None:
    raise ValueError(f"{env.name} has no known episode length: set td_steps")
  return int(env.max_episode_steps)


def window_length(config: Config, env) -> int:
  """L = K + n + 1, the steps of a replayed window."""
  return unroll_steps(config) + td_steps(config, env) + 1


def _bootstrap(config: Config, env, window: Dict[str, jax.Array]):
  """Where the n-step returns of windows ``[B, L, ...]`` bootstrap:
  ``episode [B, L]`` (episode index relative to step 0), ``same [B, K+1,
  n+1]`` (step t+k+i is in the episode of t+k) and ``boot_i [B, K+1]``
  (the return of t+k bootstraps at t+k+boot_i)."""
  K = unroll_steps(config)
  n = td_steps(config, env)
  done = window["done"].astype(jnp.int32)                      # [B, L]
  # Episode index of each step relative to the first one.
  episode = jnp.concatenate(
      [jnp.zeros_like(done[:, :1]), jnp.cumsum(done, axis=1)[:, :-1]], axis=1)
  k = jnp.arange(K + 1)
  i = jnp.arange(n + 1)
  idx = k[:, None] + i[None, :]                                # [K+1, n+1]
  same = episode[:, idx] == episode[:, k][:, :, None]          # [B, K+1, n+1]
  # Bootstrap at i = the first random exploration move after t+k (if any
  # before n): the return from there on does not follow the agent's policy.
  explored = window.get("explored")
  if explored is None:
    explored = jnp.zeros_like(window["done"])
  cut = explored[:, idx] & same & (i[None, None, :] > 0)       # [B, K+1, n+1]
  cut = cut.at[..., n].set(True)
  boot_i = jnp.argmax(cut, axis=-1)                            # [B, K+1]
  return episode, same, boot_i


def can_bootstrap(config: Config, env) -> bool:
  """Whether any value target can bootstrap from a search value (static).
  Not when ``n`` >= the game's longest episode and no move is marked as
  exploration: then step t+k+n is always in a later episode than t+k."""
  longest = env.max_episode_steps
  explores = config.random_move_prob > 0 or config.random_opening_plies > 0
  return explores or longest is None or td_steps(config, env) < longest


def bootstrap_index(config: Config, env,
                    window: Dict[str, jax.Array]) -> jax.Array:
  """``[B, K+1]``: the window offset ``k + boot_i`` at which the value
  target of unroll step k bootstraps (see :func:`compute_targets`)."""
  K = unroll_steps(config)
  return jnp.arange(K + 1)[None, :] + _bootstrap(config, env, window)[2]


def compute_targets(config: Config, env, window: Dict[str, jax.Array],
                    boot_value=None, root_value=None):
  """Targets for unroll steps k = 0..K of windows ``[B, L, ...]``.

  Returns dict of ``value [B, K+1]``, ``reward [B, K+1]`` and ``terminal
  [B, K+1]`` (entry 0 unused: 0 and False), ``policy [B, K+1, A]``,
  ``alive [B, K+1]`` (state t+k is in the episode of t). ``boot_value
  [B, K+1]``: the values to bootstrap from (default: the stored search
  values at :func:`bootstrap_index`; reanalyse gives fresh ones);
  ``root_value [B, K+1]``: the root values q_{t+k} that
  ``config.root_value_mix`` mixes in (default: the stored ones).
  """
  K = unroll_steps(config)
  n = td_steps(config, env)
  d = -1.0 if env.num_players == 2 else config.discount
  k = jnp.arange(K + 1)
  i = jnp.arange(n + 1)
  idx = k[:, None] + i[None, :]                                # [K+1, n+1]
  episode, same, boot_i = _bootstrap(config, env, window)
  before = i[None, None, :] < boot_i[..., None]
  powers = jnp.asarray(np.array([d ** j for j in range(n + 1)], np.float32))
  rewards = window["reward"][:, idx]                           # [B, K+1, n+1]
  reward_part = jnp.sum(jnp.where(same & before, rewards, 0.0) * powers,
                        axis=-1)
  boot_idx = k[None, :] + boot_i                               # [B, K+1]
  boot_same = jnp.take_along_axis(same, boot_i[..., None], -1)[..., 0]
  if boot_value is None:
    boot_value = jnp.take_along_axis(window["value"], boot_idx, axis=1)
  value = reward_part + powers[boot_i] * jnp.where(boot_same, boot_value, 0.0)
  a = config.root_value_mix
  if a:
    if root_value is None:
      root_value = window["value"][:, :K + 1]
    value = (1.0 - a) * value + a * root_value
  alive = episode[:, :K + 1] == 0                              # [B, K+1]
  value = jnp.where(alive, value, 0.0)
  # The transition INTO unrolled state k is step t+k-1's (none into k = 0,
  # nothing past the end of the episode).
  prev_alive = jnp.concatenate([jnp.ones_like(alive[:, :1]), alive[:, :-1]],
                               axis=1)

  def into_state(x):                                 # [B, L] -> [B, K+1]
    shifted = jnp.concatenate([jnp.zeros_like(x[:, :1]), x[:, :K]], axis=1)
    return jnp.where(prev_alive, shifted, jnp.zeros_like(shifted))

  return dict(value=value, reward=into_state(window["reward"]),
              terminal=into_state(window["done"].astype(bool)),
              policy=window["policy"][:, :K + 1], alive=alive)
