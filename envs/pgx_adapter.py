"""Adapter from a `pgx <https://github.com/sotetsuk/pgx>`_ environment to the
:mod:`envs.base` protocol. pgx is an OPTIONAL dependency, imported lazily by
:func:`make_pgx` (``pip install pgx``).

Mapping (pgx v1 and v2 state layouts are both handled):

* ``observation``: ``pgx_state.observation`` cast to float32 (pgx already
  observes from the point of view of ``current_player``).
* ``rewards``: ``pgx_state.rewards`` (v2; ``pgx_state.reward`` in v1), float32
  ``[num_players]``; ``reward = rewards[mover]`` where ``mover`` is the
  ``current_player`` of the state that was stepped ("reward for the player who
  just moved").
* ``terminated``: ``pgx_state.terminated | pgx_state.truncated`` (``truncated``
  is also kept as its own field).
* ``current_player`` / ``legal_action_mask``: as in pgx (pgx also makes the
  mask all True at terminal states, and ends the game with -1 for the mover
  on an illegal action, matching this package's conventions).
* Stochastic pgx envs take a key in ``step``: the adapter keeps its own
  ``rng_key`` in the state (seeded from the ``init`` key) and passes a fresh
  subkey to every pgx ``step`` whose signature accepts ``key``.
* Stepping a terminated state is a no-op with zero rewards, as everywhere.
"""

from __future__ import annotations

import inspect
from typing import Any, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from envs import base

_INSTALL_HINT = (
    "The 'pgx:<env_id>' environments need the optional dependency pgx, which "
    "is not installed: `pip install pgx` (see https://github.com/sotetsuk/pgx)."
)


def import_pgx():
  """Imports pgx, or raises an ImportError telling how to install it."""
  try:
    import pgx  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(_INSTALL_HINT) from e
  return pgx


class PgxAdapterState(NamedTuple):
  observation: jax.Array        # float32 observation_shape
  reward: jax.Array             # float32 []: reward for the player who moved
  rewards: jax.Array            # float32 [num_players]
  terminated: jax.Array         # bool []: pgx terminated | truncated
  current_player: jax.Array     # int32 []
  legal_action_mask: jax.Array  # bool [num_actions]
  step_count: jax.Array         # int32 []
  truncated: jax.Array          # bool []: pgx truncated
  rng_key: jax.Array            # key for stochastic pgx steps
  inner: Any                    # the pgx state (a pytree)


def _available_ids(pgx) -> Tuple[str, ...]:
  for fn_name in ("available_envs", "available_games"):
    fn = getattr(pgx, fn_name, None)
    if fn is not None:
      try:
        return tuple(fn())
      except Exception:  # pylint: disable=broad-except
        pass
  return ()


def _make_inner(pgx, env_id: str):
  """pgx.make, trying '_' <-> '-' spellings (pgx v1 'go-9x9', v2 'go_9x9')."""
  candidates = []
  for c in (env_id, env_id.replace("-", "_"), env_id.replace("_", "-")):
    if c not in candidates:
      candidates.append(c)
  for c in candidates:
    try:
      return pgx.make(c), c
    except (ValueError, KeyError, AssertionError, NotImplementedError):
      continue
  available = ", ".join(_available_ids(pgx)) or "see pgx.available_envs()"
  raise ValueError(f"pgx has no environment {env_id!r}; available: {available}")


class PgxEnv:
  """A pgx environment behind the :mod:`envs.base` protocol.

  Attributes are set once in ``__init__`` and never change.
  """

  def __init__(self, env_id: str):
    pgx = import_pgx()
    inner_env, resolved_id = _make_inner(pgx, env_id)
    self._env = inner_env
    self.env_id = resolved_id
    self.name = f"pgx:{env_id}"
    self.num_actions = int(inner_env.num_actions)
    self.observation_shape = tuple(int(d) for d in inner_env.observation_shape)
    self.num_players = int(inner_env.num_players)
    self.max_episode_steps: Optional[int] = None  # Unknown in general.
    try:
      params = inspect.signature(inner_env.step).parameters
      self._step_takes_key = "key" in params
    except (TypeError, ValueError):
      self._step_takes_key = False

  def __repr__(self) -> str:
    return f"PgxEnv({self.env_id!r})"

  def _wrap(self, inner, reward, rewards, step_count, rng_key):
    truncated = jnp.asarray(getattr(inner, "truncated", False), jnp.bool_)
    terminated = jnp.asarray(inner.terminated, jnp.bool_) | truncated
    return PgxAdapterState(
        observation=jnp.asarray(inner.observation).astype(jnp.float32),
        reward=jnp.asarray(reward, jnp.float32).reshape(()),
        rewards=rewards,
        terminated=terminated.reshape(()),
        current_player=jnp.asarray(inner.current_player, jnp.int32).reshape(()),
        legal_action_mask=jnp.asarray(inner.legal_action_mask, jnp.bool_),
        step_count=jnp.asarray(step_count, jnp.int32),
        truncated=truncated.reshape(()),
        rng_key=rng_key,
        inner=inner,
    )

  def _rewards(self, inner) -> jax.Array:
    r = getattr(inner, "rewards", None)
    if r is None:
      r = inner.reward  # pgx v1.
    return jnp.asarray(r, jnp.float32).reshape(self.num_players)

  def init(self, key: jax.Array) -> PgxAdapterState:
    key_inner, key_state = jax.random.split(key)
    inner = self._env.init(key_inner)
    return self._wrap(inner, 0.0, jnp.zeros(self.num_players, jnp.float32),
                      0, key_state)

  def step(self, state: PgxAdapterState, action: jax.Array) -> PgxAdapterState:
    action = base.as_action(action)
    key_step, key_next = jax.random.split(state.rng_key)
    if self._step_takes_key:
      inner = self._env.step(state.inner, action, key_step)
    else:
      inner = self._env.step(state.inner, action)
    rewards = self._rewards(inner)
    reward = rewards[state.current_player]
    new_state = self._wrap(inner, reward, rewards, state.step_count + 1,
                           key_next)
    return base.noop_if_terminated(state, new_state)

  def render(self, state: PgxAdapterState) -> str:
    lines = [f"{self.name}: player {int(state.current_player)} to move, "
             f"terminated={bool(state.terminated)}, "
             f"reward={float(state.reward):+g}"]
    obs = np.asarray(state.observation)
    if obs.ndim == 3 and obs.shape[-1] >= 2:
      # Board-like observation: plane 0 = own, plane 1 = opponent.
      for r in range(obs.shape[0]):
        lines.append(" ".join(
            "X" if obs[r, c, 0] > 0 else "O" if obs[r, c, 1] > 0 else "."
            for c in range(obs.shape[1])))
    legal = np.flatnonzero(np.asarray(state.legal_action_mask))
    lines.append(f"legal actions: {legal.tolist()}")
    return "\n".join(lines)


def make_pgx(env_id: str) -> PgxEnv:
  """Wraps ``pgx.make(env_id)``; raises ImportError if pgx is missing."""
  return PgxEnv(env_id)
