"""MuZero / AlphaZero networks in dm-haiku.

Three functions, as in MuZero (Schrittwieser et al. 2020):

* ``represent(obs [B, *obs_shape]) -> latent [B, D]``
* ``dynamics(latent [B, D], action [B]) -> (next latent [B, D],
  reward logits [B, S])``
* ``predict(latent [B, D]) -> (policy logits [B, A], value logits [B, S])``

Board games are small, so the torsos are residual MLPs on the flattened
observation (pre-activation blocks: LayerNorm -> ReLU -> Linear, twice, plus
the skip). Every latent is min-max scaled to ``[0, 1]`` per sample, as in
MuZero, so that the dynamics' inputs keep the representation's scale.
Values and rewards are categorical over a :class:`~agents.value_transform.
Support` (see that module). AlphaZero uses ``predict(represent(obs))`` only.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class NetConfig:
  num_actions: int
  width: int = 128         # Hidden width of the residual MLPs.
  latent_size: int = 128   # D, the size of the (scaled) hidden state.
  repr_blocks: int = 2
  dyn_blocks: int = 2
  pred_blocks: int = 1
  value_bins: int = 21     # S, the categorical support size.


class ResBlock(hk.Module):

  def __init__(self, width: int, name=None):
    super().__init__(name=name)
    self.width = width

  def __call__(self, x):
    y = hk.LayerNorm(-1, create_scale=True, create_offset=True)(x)
    y = hk.Linear(self.width)(jax.nn.relu(y))
    y = hk.LayerNorm(-1, create_scale=True, create_offset=True)(y)
    y = hk.Linear(self.width, w_init=hk.initializers.VarianceScaling(0.1))(
        jax.nn.relu(y))
    return x + y


def _torso(x, width, num_blocks, name):
  with hk.experimental.name_scope(name):
    x = hk.Linear(width)(x)
    for _ in range(num_blocks):
      x = ResBlock(width)(x)
    return jax.nn.relu(hk.LayerNorm(-1, True, True)(x))


def scale_latent(x):
  """Min-max scales each row of ``x`` to ``[0, 1]`` (MuZero)."""
  lo = jnp.min(x, axis=-1, keepdims=True)
  hi = jnp.max(x, axis=-1, keepdims=True)
  return (x - lo) / jnp.maximum(hi - lo, 1e-5)


class MuZeroNets(NamedTuple):
  """Pure functions of ``params`` (haiku's ``multi_transform`` applies)."""
  init: Callable
  represent: Callable  # (params, obs) -> latent
  dynamics: Callable   # (params, latent, action) -> (latent, reward_logits)
  predict: Callable    # (params, latent) -> (policy_logits, value_logits)


def make_networks(config: NetConfig) -> MuZeroNets:
  """Builds the three networks; ``init(key, obs [B, ...])`` makes params."""

  def forward():
    def represent(obs):
      x = obs.reshape(obs.shape[0], -1).astype(jnp.float32)
      x = _torso(x, config.width, config.repr_blocks, "representation")
      return scale_latent(hk.Linear(config.latent_size, name="repr_out")(x))

    def dynamics(latent, action):
      a = jax.nn.one_hot(action, config.num_actions)
      x = jnp.concatenate([latent, a], axis=-1)
      x = _torso(x, config.width, config.dyn_blocks, "dynamics")
      next_latent = scale_latent(
          hk.Linear(config.latent_size, name="dyn_out")(x))
      reward_logits = hk.Linear(config.value_bins, name="reward_head",
                                w_init=jnp.zeros)(x)
      return next_latent, reward_logits

    def predict(latent):
      x = _torso(latent, config.width, config.pred_blocks, "prediction")
      policy_logits = hk.Linear(config.num_actions, name="policy_head",
                                w_init=jnp.zeros)(x)
      value_logits = hk.Linear(config.value_bins, name="value_head",
                               w_init=jnp.zeros)(x)
      return policy_logits, value_logits

    def init(obs):
      latent = represent(obs)
      next_latent, _ = dynamics(latent, jnp.zeros(obs.shape[0], jnp.int32))
      return predict(next_latent)

    return init, (represent, dynamics, predict)

  transformed = hk.without_apply_rng(hk.multi_transform(forward))
  represent, dynamics, predict = transformed.apply
  return MuZeroNets(init=transformed.init, represent=represent,
                    dynamics=dynamics, predict=predict)
