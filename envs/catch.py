"""Catch (as in bsuite / DeepMind) in pure JAX (see :mod:`envs.base`).

A ball starts in a random column (drawn from the ``init`` key) of the top row
of a ``rows x columns`` grid (default 10 x 5) and falls one row per step. The
paddle sits on the bottom row, starting in the middle column
(``columns // 2``); actions ``0`` / ``1`` / ``2`` move it left / stay / right
(clipped at the walls; out-of-range actions are clipped to ``[0, 2]``, all
actions are always legal). Each step first moves the paddle, then the ball.
The episode ends when the ball reaches the bottom row, i.e. after exactly
``rows - 1`` steps, with reward ``+1`` if the paddle is under the ball and
``-1`` otherwise; intermediate rewards are 0. Single player: ``current_player``
is always 0. Observation: float32 ``[rows, columns, 1]``, 1 at the ball and
at the paddle, 0 elsewhere.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from envs import base


class CatchState(NamedTuple):
  observation: jax.Array        # float32 [rows, columns, 1]
  reward: jax.Array             # float32 []
  rewards: jax.Array            # float32 [1]
  terminated: jax.Array         # bool []
  current_player: jax.Array     # int32 [], always 0
  legal_action_mask: jax.Array  # bool [3], always all True
  step_count: jax.Array         # int32 []
  ball_row: jax.Array           # int32 []
  ball_col: jax.Array           # int32 []
  paddle_col: jax.Array         # int32 []


@dataclasses.dataclass(frozen=True)
class Catch:
  rows: int = 10
  columns: int = 5

  name: str = dataclasses.field(default="catch", init=False)
  num_actions: int = dataclasses.field(default=3, init=False)
  num_players: int = dataclasses.field(default=1, init=False)

  def __post_init__(self):
    if self.rows < 2 or self.columns < 1:
      raise ValueError(f"Catch needs rows >= 2 and columns >= 1, got "
                       f"{self.rows} x {self.columns}")

  @property
  def observation_shape(self) -> Tuple[int, ...]:
    return (self.rows, self.columns, 1)

  @property
  def max_episode_steps(self) -> Optional[int]:
    return self.rows - 1

  def _observe(self, ball_row, ball_col, paddle_col) -> jax.Array:
    obs = jnp.zeros(self.observation_shape, jnp.float32)
    obs = obs.at[ball_row, ball_col, 0].set(1.0)
    return obs.at[self.rows - 1, paddle_col, 0].set(1.0)

  def init(self, key: jax.Array) -> CatchState:
    ball_col = jax.random.randint(key, (), 0, self.columns, dtype=jnp.int32)
    ball_row = jnp.int32(0)
    paddle_col = jnp.int32(self.columns // 2)
    return CatchState(
        observation=self._observe(ball_row, ball_col, paddle_col),
        reward=jnp.float32(0.0),
        rewards=jnp.zeros(1, jnp.float32),
        terminated=jnp.bool_(False),
        current_player=jnp.int32(0),
        legal_action_mask=jnp.ones(3, jnp.bool_),
        step_count=jnp.int32(0),
        ball_row=ball_row,
        ball_col=ball_col,
        paddle_col=paddle_col,
    )

  def step(self, state: CatchState, action: jax.Array) -> CatchState:
    move = jnp.clip(base.as_action(action), 0, 2) - 1
    paddle_col = jnp.clip(state.paddle_col + move, 0, self.columns - 1)
    ball_row = state.ball_row + 1
    terminated = ball_row >= self.rows - 1
    caught = paddle_col == state.ball_col
    reward = jnp.where(terminated, jnp.where(caught, 1.0, -1.0), 0.0)
    reward = reward.astype(jnp.float32)
    new_state = state._replace(
        observation=self._observe(ball_row, state.ball_col, paddle_col),
        reward=reward,
        rewards=reward[None],
        terminated=terminated,
        step_count=state.step_count + 1,
        ball_row=ball_row,
        paddle_col=paddle_col,
    )
    return base.noop_if_terminated(state, new_state)

  def render(self, state: CatchState) -> str:
    grid = [["."] * self.columns for _ in range(self.rows)]
    grid[self.rows - 1][int(state.paddle_col)] = "="
    br, bc = int(state.ball_row), int(state.ball_col)
    grid[br][bc] = "@" if grid[br][bc] == "." else "*"  # "*": caught.
    lines = ["".join(row) for row in grid]
    if bool(state.terminated):
      caught = int(state.paddle_col) == bc
      lines.append(f"terminated ({'caught' if caught else 'missed'}"
                   f" at step {int(state.step_count)})")
    else:
      lines.append(f"step {int(state.step_count)}")
    return "\n".join(lines)
