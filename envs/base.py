"""A small protocol for pure-JAX environments.

Every environment in :mod:`envs` is an immutable ``Env`` object (a frozen
dataclass, or a class whose attributes never change after ``__init__``) that
exposes *pure* functions for ONE environment instance::

    env = envs.make("tictactoe")
    init = jax.jit(jax.vmap(env.init))          # [B] keys    -> [B] states
    step = jax.jit(jax.vmap(env.step))          # [B] states, [B] actions -> [B] states
    state = init(jax.random.split(key, B))
    state = step(state, actions)

Both ``init`` and ``step`` are jittable and vmappable, and every array in a
state has a fixed shape and dtype, so states can be carried through
``lax.scan`` / ``lax.while_loop`` and stacked into batches.

Env attributes
--------------
``name`` (str), ``num_actions`` (int), ``observation_shape`` (tuple of int),
``num_players`` (1 or 2), ``max_episode_steps`` (int: an upper bound on the
number of non-no-op steps before ``terminated`` is reached; for the pgx
adapter it is ``None`` when unknown). Methods ``init(key) -> State``,
``step(state, action) -> State`` and ``render(state) -> str`` (a text board of
ONE unbatched state, for debugging). Optional: ``mirror``, a :class:`Mirror`
(the game's left-right reflection, for data augmentation), or ``None``.

State fields (common to every env)
----------------------------------
``observation``        float32 ``observation_shape``, from the point of view
                       of ``current_player`` (board games: plane 0 = stones
                       of the player to move, plane 1 = opponent stones).
``reward``             float32 scalar: reward for the player who JUST moved
                       (i.e. ``current_player`` of the previous state).
``rewards``            float32 ``[num_players]``: the same reward per player
                       (``rewards[mover] == reward``; zero-sum for 2 players).
``terminated``         bool scalar.
``current_player``     int32 scalar, player to move (0 or 1; always 0 for
                       single-player games). At a terminal state it is the
                       player who *would* move next (two-player games keep
                       alternating), and ``observation`` is from their view.
``legal_action_mask``  bool ``[num_actions]``. At terminal states it is all
                       True (as in pgx), so that masked policy normalisation
                       never divides by zero; any action there is a no-op.
``step_count``         int32 scalar, number of effective steps taken.

Environments add their own internal fields (``board``, ``ball_row``...).

Conventions
-----------
* Stepping a terminated state is a no-op: the same state is returned with
  ``reward`` and ``rewards`` set to 0 (``step_count`` does not advance). This
  makes lock-step batched self-play easy: keep stepping every env until all
  are done.
* Illegal action in a two-player game (a masked-out action, or one outside
  ``[0, num_actions)``): the board is unchanged, the game ends immediately and
  the mover loses: ``reward = -1`` (``rewards[mover] = -1``,
  ``rewards[opponent] = +1``), ``terminated = True``.
* Two-player wins give ``+1`` to the mover (``-1`` to the opponent); draws 0.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Protocol, Tuple
from typing import runtime_checkable

import jax
import jax.numpy as jnp


@runtime_checkable
class State(Protocol):
  """Fields every environment state has (see the module docstring)."""

  observation: jax.Array
  reward: jax.Array
  rewards: jax.Array
  terminated: jax.Array
  current_player: jax.Array
  legal_action_mask: jax.Array
  step_count: jax.Array


@runtime_checkable
class Env(Protocol):
  """The environment protocol (see the module docstring)."""

  name: str
  num_actions: int
  observation_shape: Tuple[int, ...]
  num_players: int
  max_episode_steps: Optional[int]

  def init(self, key: jax.Array) -> Any:
    ...

  def step(self, state: Any, action: jax.Array) -> Any:
    ...

  def render(self, state: Any) -> str:
    ...


class Mirror(NamedTuple):
  """A left-right reflection of a board game, under which its rules are
  unchanged: observations ``[..., *observation_shape]`` are reversed along
  ``axis`` (negative, counted from the end), and action ``a`` becomes
  ``actions[a]`` (a permutation that is its own inverse)."""
  axis: int
  actions: Tuple[int, ...]


def mirror_of(env) -> Optional[Mirror]:
  """``env.mirror``, or ``None`` when the game declares no reflection."""
  return getattr(env, "mirror", None)


def tree_select(pred: jax.Array, on_true: Any, on_false: Any) -> Any:
  """Leaf-wise ``jnp.where(pred, on_true, on_false)`` for a scalar ``pred``."""
  return jax.tree_util.tree_map(
      lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def noop_if_terminated(state: Any, new_state: Any) -> Any:
  """Returns ``new_state``, or ``state`` with zero rewards if it is terminal.

  ``state`` and ``new_state`` must be NamedTuples with ``reward``/``rewards``.
  """
  frozen = state._replace(
      reward=jnp.zeros_like(state.reward),
      rewards=jnp.zeros_like(state.rewards))
  return tree_select(state.terminated, frozen, new_state)


def two_player_rewards(mover: jax.Array, reward: jax.Array) -> jax.Array:
  """float32 [2] zero-sum rewards: ``reward`` to ``mover``, minus to other."""
  reward = jnp.asarray(reward, jnp.float32)
  rewards = jnp.where(jnp.arange(2) == mover, reward, -reward)
  return jnp.where(rewards == 0, 0.0, rewards)  # No -0.0.


def as_action(action: jax.Array) -> jax.Array:
  """Casts an action to an int32 scalar array."""
  return jnp.asarray(action).astype(jnp.int32).reshape(())


def legal_or_all(terminated: jax.Array, mask: jax.Array) -> jax.Array:
  """The legal-action mask convention: all True at terminal states."""
  return jnp.where(terminated, jnp.ones_like(mask), mask)
