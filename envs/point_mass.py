"""A 1-D continuous control task: push a point mass to the origin.

State (x, v); action u in [-1, 1] (a float32 `[1]` force); with dt = 0.1:
  v' = v + u dt,  x' = x + v' dt,  reward = -(x'^2 + 0.1 u^2).
An episode starts at x ~ U(-1, 1), v = 0, and lasts `horizon` steps. The
action space is continuous, so the env has `action_shape = (1,)` and no
`num_actions`: it is for the sampled-actions search (`mcts.sampled`).
"""
import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp


class PointMassState(NamedTuple):
  observation: jax.Array  # float32 [3]: x, v, fraction of the episode left
  reward: jax.Array
  terminated: jax.Array
  position: jax.Array
  velocity: jax.Array
  step_count: jax.Array


@dataclasses.dataclass(frozen=True)
class PointMass:
  """The environment; `init`/`step` act on ONE state (vmap them)."""
  horizon: int = 20
  dt: float = 0.1
  action_cost: float = 0.1
  name: str = "point_mass"
  action_shape: tuple = (1,)
  observation_shape: tuple = (3,)
  num_players: int = 1

  def _observe(self, x, v, t):
    return jnp.stack([x, v, 1.0 - t / self.horizon]).astype(jnp.float32)

  def init(self, key: jax.Array) -> PointMassState:
    x = jax.random.uniform(key, (), jnp.float32, -1.0, 1.0)
    v = jnp.zeros((), jnp.float32)
    t = jnp.zeros((), jnp.int32)
    return PointMassState(self._observe(x, v, t), jnp.zeros(()),
                          jnp.array(False), x, v, t)

  def step(self, state: PointMassState, action: jax.Array) -> PointMassState:
    """A terminated state steps to itself with reward 0."""
    u = jnp.clip(jnp.reshape(action, ())[()], -1.0, 1.0)
    v = state.velocity + u * self.dt
    x = state.position + v * self.dt
    reward = -(x ** 2 + self.action_cost * u ** 2)
    t = state.step_count + 1
    new = PointMassState(self._observe(x, v, t), reward.astype(jnp.float32),
                         t >= self.horizon, x, v, t)
    return jax.tree.map(
        lambda old, n: jnp.where(state.terminated, old, n),
        state._replace(reward=jnp.zeros(())), new)
