"""MuZero (Schrittwieser et al. 2020): its networks in dm-haiku, the agent
that searches with them, and its K-step unrolled loss.

Three functions:

* ``represent(obs [B, *obs_shape]) -> latent [B, *L]``
* ``dynamics(latent [B, *L], action [B]) -> (next latent [B, *L],
  reward logits [B, S])``
* ``predict(latent [B, *L]) -> (policy logits [B, A], value logits [B, S])``

with ``L = (D,)`` for the MLP torso and ``(H, W, C)`` for the
convolutional one.

Two torsos (``config.torso``):

* ``"mlp"`` (the default): residual MLPs on the flattened observation
  (pre-activation blocks: LayerNorm -> ReLU -> Linear, twice, plus the
  skip); the latent is a vector ``[B, D]``.
* ``"conv"``: MuZero's board-game networks (Schrittwieser et al. 2020,
  appendix "Network Architecture"), residual 3x3 convolutions over an image
  observation ``[B, H, W, C_in]``; the latent keeps the board's shape,
  ``[B, H, W, C]``, and the dynamics reads the action as a plane stacked
  on it (:func:`action_planes`), so that what a move does near its square
  is a local computation, as it is in the game.

Every latent is min-max scaled to ``[0, 1]`` per sample, as in MuZero, so
that the dynamics' inputs keep the representation's scale. Values and
rewards are categorical over a :class:`~agents.algorithms.losses.Support`.

Acting (:class:`MuZeroAgent`): the root embedding is
``represent(observation)``; ``recurrent_fn`` applies ``dynamics`` then
``predict``; ``discount`` is -1 for two-player games (values from the point
of view of the player to move) and ``config.discount`` for single-player
games; the search is Gumbel MuZero or pUCT (``config.policy``).

Loss, for a window starting at replay step ``t`` (K = unroll steps): the
representation encodes ``obs_t``; the dynamics is unrolled along the actions
``a_t .. a_{t+K-1}`` that were actually played; at every unrolled state
``k = 0..K`` the prediction is trained towards the policy target (the
search's ``action_weights`` at ``t+k``, cross-entropy) and the value target
``z_{t+k}`` (two-hot), and the reward head at ``k = 1..K`` towards
``r_{t+k-1}`` (the targets: :mod:`agents.training.targets`), with weight
``config.terminal_reward_weight`` where that transition ends the episode
(1 elsewhere). Unroll steps past the end of the episode have no policy
loss. As in MuZero, the gradient through the hidden state is halved at
each dynamics step.

Temporal consistency (EfficientZero: Ye et al. 2021, "Mastering Atari Games
with Limited Data"; ``config.consistency_weight`` > 0, default 0 = off):
the unrolled latent ``s^k`` (``k = 1..K``) is pulled towards the
representation of the observation actually seen, ``h(o_{t+k})``, SimSiam
style (Chen & He 2021)::

  l_c^k = -cos(q(g(s^k)), stop_gradient(g(h(o_{t+k}))))

with ``g`` a projector and ``q`` a predictor (small MLPs, only built when
the weight is > 0, so that other runs keep their parameter trees). Steps
whose ``o_{t+k}`` lies past the end of the episode of ``t`` are masked
(``alive``); the term is the mean over the other steps, so that it lies in
``[-1, 1]`` with -1 a perfect match.

Observation reconstruction (``config.reconstruction_weight`` > 0, default
0 = off; as the reconstruction loss that Scholz et al. 2021, "Improving
Model-Based Reinforcement Learning with Internal State Representations
through Self-Supervision", add to MuZero): a decoder ``d`` reads each latent
``s^k`` (``k = 0..K``) back into the observation it stands for, with the
sigmoid cross-entropy of every observation feature (features in
``[0, 1]``, such as a board's planes)::

  l_r^k = mean_f BCE(o_{t+k, f}, sigmoid(d(s^k)_f))

so that the representation keeps the whole position and the dynamics
learns to move it, a dense signal beside the sparse reward of a board
game. Steps past the end of the episode of ``t`` are masked; the term is
the mean over the other steps.

The end of the episode (``config.end_weight`` > 0, default 0 = off; as the
discount predictor of DreamerV2, Hafner et al. 2021, "Mastering Atari with
Discrete World Models"): a head ``e`` reads each latent ``s^k`` (``k =
0..K``) and gives the logit that the episode of ``t`` has ended by step
``t+k``, trained with the sigmoid cross-entropy against ``1 - alive_k``,
the mean over every step::

  l_e^k = BCE(1 - alive_k, sigmoid(e(s^k)))

In the search, ``recurrent_fn``'s discount becomes ``discount * (1 -
sigmoid(e(s')))``: past a predicted end, rewards and values no longer back
up, as past a terminal state of the true game, where the model's own
values after the end are only trained towards 0.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import optax

import mcts
from agents.algorithms.convolution import Conv2D
from agents.algorithms.losses import (Support, cross_entropy,
                                     masked_mean, per_shard,
                                     negative_cosine_similarity,
                                     scale_gradient)
from agents.config import Config, shard_rows, unroll_steps


@dataclasses.dataclass(frozen=True)
class NetConfig:
  num_actions: int
  width: int = 128         # Hidden width of the residual MLPs.
  latent_size: int = 128   # D, the size of the (scaled) hidden state.
  repr_blocks: int = 2
  dyn_blocks: int = 2
  pred_blocks: int = 1
  value_bins: int = 21     # S, the categorical support size.
  # P, the output size of the consistency heads (projector, predictor);
  # 0: no heads, and no parameters for them.
  projection_size: int = 0
  # F, the flattened observation size the decoder reconstructs
  # (config.reconstruction_weight > 0); 0: no decoder, no parameters.
  observation_size: int = 0
  # Whether the episode-end head exists (config.end_weight > 0).
  end_head: bool = False
  # "mlp" or "conv" (config.torso); C, the convolutional torso's channels.
  torso: str = "mlp"
  channels: int = 32
  # The rows of a batch that the projection heads' batch statistics are
  # taken over: one shard's batch (config.batch_size / num_shards), so
  # that a run's result does not depend on the devices its shards are
  # spread over (:func:`per_shard`); 0: the whole batch.
  shard_rows: int = 0


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


def torso(x, width: int, num_blocks: int, name: str):
  """``[B, F] -> [B, width]``: a Linear, ``num_blocks`` residual blocks and a
  LayerNorm + ReLU, under the haiku name scope ``name``."""
  with hk.experimental.name_scope(name):
    x = hk.Linear(width)(x)
    for _ in range(num_blocks):
      x = ResBlock(width)(x)
    return jax.nn.relu(hk.LayerNorm(-1, True, True)(x))


def scale_latent(x):
  """Min-max scales each sample of ``x [B, ...]`` to ``[0, 1]`` over all
  its features (MuZero)."""
  axes = tuple(range(1, x.ndim))
  lo = jnp.min(x, axis=axes, keepdims=True)
  hi = jnp.max(x, axis=axes, keepdims=True)
  return (x - lo) / jnp.maximum(hi - lo, 1e-5)


def flatten(x):
  """``[B, ...] -> [B, F]``."""
  return x.reshape(x.shape[0], -1)


def representation(obs, config: NetConfig):
  """``obs [B, ...] -> latent [B, D]``, the representation network (inside
  a haiku transform)."""
  x = flatten(obs).astype(jnp.float32)
  x = torso(x, config.width, config.repr_blocks, "representation")
  return scale_latent(hk.Linear(config.latent_size, name="repr_out")(x))


def dynamics(latent, action, config: NetConfig):
  """``(latent [B, D], action [B]) -> (next latent [B, D], reward logits
  [B, S])``, the dynamics network (inside a haiku transform)."""
  a = jax.nn.one_hot(action, config.num_actions)
  x = torso(jnp.concatenate([latent, a], axis=-1), config.width,
            config.dyn_blocks, "dynamics")
  next_latent = scale_latent(hk.Linear(config.latent_size, name="dyn_out")(x))
  reward_logits = hk.Linear(config.value_bins, name="reward_head",
                            w_init=jnp.zeros)(x)
  return next_latent, reward_logits


def prediction(latent, config: NetConfig):
  """``latent [B, D] -> (policy logits [B, A], value logits [B, S])``, the
  prediction network (inside a haiku transform)."""
  x = torso(latent, config.width, config.pred_blocks, "prediction")
  policy_logits = hk.Linear(config.num_actions, name="policy_head",
                            w_init=jnp.zeros)(x)
  value_logits = hk.Linear(config.value_bins, name="value_head",
                           w_init=jnp.zeros)(x)
  return policy_logits, value_logits


class ConvBlock(hk.Module):
  """A pre-activation residual block of two 3x3 convolutions over ``[B, H,
  W, C]`` (LayerNorm over the channels of each square)."""

  def __init__(self, channels: int, name=None):
    super().__init__(name=name)
    self.channels = channels

  def __call__(self, x):
    y = hk.LayerNorm(-1, create_scale=True, create_offset=True)(x)
    y = Conv2D(self.channels, 3)(jax.nn.relu(y))
    y = hk.LayerNorm(-1, create_scale=True, create_offset=True)(y)
    y = Conv2D(self.channels, 3,
               w_init=hk.initializers.VarianceScaling(0.1))(jax.nn.relu(y))
    return x + y


def conv_torso(x, channels: int, num_blocks: int, name: str):
  """``[B, H, W, C_in] -> [B, H, W, channels]``: a 3x3 convolution,
  ``num_blocks`` residual blocks and a LayerNorm + ReLU, under the haiku
  name scope ``name``."""
  with hk.experimental.name_scope(name):
    x = Conv2D(channels, 3)(x)
    for _ in range(num_blocks):
      x = ConvBlock(channels)(x)
    return jax.nn.relu(hk.LayerNorm(-1, True, True)(x))


def conv_head(x, planes: int, width: int, outputs: int, name: str):
  """``[B, H, W, C] -> [B, outputs]``: a 1x1 convolution to ``planes``
  planes, normalised, flattened, a hidden layer of ``width`` when ``width``
  > 0, and a zero-initialised output layer (MuZero's policy, value and
  reward heads).

  The planes are normalised before their ReLU, as the paper's heads are
  (there by batch normalisation; here each sample's planes over the board,
  which needs no batch statistics in the search): unnormalised, one or two
  planes whose every square went negative let no gradient through again,
  and the head predicted one value for every position (AlphaZero with these
  networks on Connect Four, within 200 iterations).
  """
  with hk.experimental.name_scope(name):
    x = hk.LayerNorm(axis=(-3, -2, -1), create_scale=True,
                     create_offset=True, param_axis=-1)(Conv2D(planes, 1)(x))
    x = flatten(jax.nn.relu(x))
    if width:
      x = jax.nn.relu(hk.Linear(width)(x))
    return hk.Linear(outputs, w_init=jnp.zeros)(x)


def action_planes(action, num_actions: int, height: int, width: int):
  """``action [B] -> [B, H, W, P]``, the action as planes beside a board
  latent (MuZero encodes a move as a plane):

  * ``num_actions == H * W`` (a move is a square, as in tic-tac-toe or
    Go): one plane, 1 on that square;
  * ``num_actions == W`` (a move is a column, as in Connect Four): one
    plane, 1 on that column;
  * else: ``A`` constant planes, the one-hot action.
  """
  a = jax.nn.one_hot(action, num_actions)
  batch = action.shape[0]
  if num_actions == height * width:
    return a.reshape(batch, height, width, 1)
  if num_actions == width:
    return jnp.broadcast_to(a[:, None, :, None], (batch, height, width, 1))
  return jnp.broadcast_to(a[:, None, None, :],
                          (batch, height, width, num_actions))


def conv_representation(obs, config: NetConfig):
  """``obs [B, H, W, C_in] -> latent [B, H, W, C]``."""
  x = conv_torso(obs.astype(jnp.float32), config.channels,
                 config.repr_blocks, "representation")
  return scale_latent(Conv2D(config.channels, 3, name="repr_out")(x))


def conv_dynamics(latent, action, config: NetConfig):
  """``(latent [B, H, W, C], action [B]) -> (next latent [B, H, W, C],
  reward logits [B, S])``."""
  _, height, width, _ = latent.shape
  x = jnp.concatenate(
      [latent, action_planes(action, config.num_actions, height, width)],
      axis=-1)
  x = conv_torso(x, config.channels, config.dyn_blocks, "dynamics")
  next_latent = scale_latent(Conv2D(config.channels, 3, name="dyn_out")(x))
  reward_logits = conv_head(x, 1, config.width, config.value_bins,
                            "reward_head")
  return next_latent, reward_logits


def conv_prediction(latent, config: NetConfig):
  """``latent [B, H, W, C] -> (policy logits [B, A], value logits [B,
  S])``."""
  x = conv_torso(latent, config.channels, config.pred_blocks, "prediction")
  return (conv_head(x, 2, 0, config.num_actions, "policy_head"),
          conv_head(x, 1, config.width, config.value_bins, "value_head"))


def batch_standardize(x, mask=None, rows: int = 0, eps: float = 1e-5):
  """``x [B, F]`` with each feature at zero mean and unit variance over the
  rows where ``mask [B]`` (default: all) of each shard of ``rows`` rows
  (:func:`per_shard`), by the statistics of those rows: batch
  normalisation without learned scale or running statistics
  (the consistency heads run in the loss only, always on a batch). As the
  batch normalisation of EfficientZero's heads, it takes away the
  batch-constant output by which the heads would otherwise collapse: with
  layer normalisation instead, the term reached -0.999 within two
  iterations of Connect Four MuZero, whatever the latents."""
  def standardize(x, w):
    w = (w / jnp.maximum(jnp.sum(w), 1.0))[:, None]
    mean = jnp.sum(w * x, axis=0, keepdims=True)
    var = jnp.sum(w * jnp.square(x - mean), axis=0, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + eps)
  w = jnp.ones(x.shape[:1], x.dtype) if mask is None else mask.astype(
      x.dtype)
  return per_shard(standardize, rows, x, w).reshape(x.shape)


def decoder(latent, config: NetConfig):
  """``latent [B, *L] -> [B, F]``, the logits of the observation's features
  (the reconstruction loss; inside a haiku transform)."""
  x = torso(flatten(latent), config.width, 1, "decoder")
  return hk.Linear(config.observation_size, name="decoder_out")(x)


def end_predictor(latent, config: NetConfig):
  """``latent [B, *L] -> [B]``, the logit that the episode has ended by this
  latent's step (a hidden layer; inside a haiku transform)."""
  with hk.experimental.name_scope("end"):
    x = jax.nn.relu(hk.Linear(config.width)(flatten(latent)))
    return hk.Linear(1, name="end_head")(x)[:, 0]


def projector(latent, mask, config: NetConfig):
  """``latent [B, *L] -> [B, P]``, EfficientZero's projection head:
  Linear -> BatchNorm -> ReLU -> Linear -> BatchNorm (statistics of the rows
  where ``mask [B]``: :func:`batch_standardize`; inside a haiku
  transform)."""
  with hk.experimental.name_scope("projector"):
    x = jax.nn.relu(batch_standardize(
        hk.Linear(config.width)(flatten(latent)), mask, config.shard_rows))
    return batch_standardize(hk.Linear(config.projection_size)(x), mask,
                             config.shard_rows)


def projection_predictor(z, mask, config: NetConfig):
  """``z [B, P] -> [B, P]``, EfficientZero's prediction head on the online
  branch: Linear -> BatchNorm -> ReLU -> Linear (inside a haiku
  transform)."""
  with hk.experimental.name_scope("projection_predictor"):
    x = jax.nn.relu(batch_standardize(hk.Linear(config.width)(z), mask,
                                      config.shard_rows))
    return hk.Linear(config.projection_size)(x)


class MuZeroNets(NamedTuple):
  """Pure functions of ``params`` (haiku's ``multi_transform`` applies)."""
  init: Callable
  represent: Callable  # (params, obs) -> latent
  dynamics: Callable   # (params, latent, action) -> (latent, reward_logits)
  predict: Callable    # (params, latent) -> (policy_logits, value_logits)
  project: Callable    # (params, latent [B, *L], mask [B]) -> [B, P]
  predict_projection: Callable  # (params, z [B, P], mask [B]) -> [B, P]
  decode: Callable     # (params, latent [B, *L]) -> [B, F]
  predict_end: Callable  # (params, latent [B, *L]) -> end logits [B]


def make_networks(config: NetConfig) -> MuZeroNets:
  """Builds the three networks (and the consistency heads when
  ``config.projection_size`` > 0, the decoder when
  ``config.observation_size`` > 0, the episode-end head when
  ``config.end_head``); ``init(key, obs [B, ...])`` makes params."""

  conv = config.torso == "conv"

  def forward():
    def represent(obs):
      return (conv_representation if conv else representation)(obs, config)

    def step(latent, action):
      return (conv_dynamics if conv else dynamics)(latent, action, config)

    def predict(latent):
      return (conv_prediction if conv else prediction)(latent, config)

    def project(latent, mask=None):
      return projector(latent, mask, config)

    def predict_projection(z, mask=None):
      return projection_predictor(z, mask, config)

    def decode(latent):
      return decoder(latent, config)

    def predict_end(latent):
      return end_predictor(latent, config)

    def init(obs):
      latent = represent(obs)
      next_latent, _ = step(latent, jnp.zeros(obs.shape[0], jnp.int32))
      out = predict(next_latent)
      if config.projection_size:  # After the others: their init is kept.
        predict_projection(project(next_latent))
      if config.observation_size:
        decode(next_latent)
      if config.end_head:
        predict_end(next_latent)
      return out

    return init, (represent, step, predict, project, predict_projection,
                  decode, predict_end)

  transformed = hk.without_apply_rng(hk.multi_transform(forward))
  return MuZeroNets(transformed.init, *transformed.apply)


@dataclasses.dataclass(frozen=True)
class MuZeroAgent:
  """The networks wrapped into what a search needs, for ``env``.

  Built once per run by :func:`make_agent` and handed down; equal (and
  hashing alike) when ``config`` and ``env`` are, so that jitted functions
  cached per agent are shared by agents of one config.
  """
  config: Config
  env: Any = dataclasses.field(hash=False)
  nets: Any = dataclasses.field(compare=False, repr=False)
  support: Support = dataclasses.field(compare=False, repr=False)

  @property
  def two_player(self) -> bool:
    return self.env.num_players == 2

  @property
  def model_discount(self) -> float:
    return -1.0 if self.two_player else self.config.discount

  @property
  def reads_next_observations(self) -> bool:
    """Whether the loss reads ``o_{t+1..t+K}`` (K > 0): the consistency
    and reconstruction terms."""
    c = self.config
    return unroll_steps(c) > 0 and (c.consistency_weight > 0
                                    or c.reconstruction_weight > 0)

  def predict(self, params, latent):
    """``(policy logits [B, A], value [B])`` at ``latent [B, *L]``."""
    logits, value_logits = self.nets.predict(params, latent)
    return logits, self.support.logits_to_scalar(value_logits)

  def root(self, params, states) -> mcts.RootFnOutput:
    """The search's root for a batch ``[B]`` of environment states."""
    latent = self.nets.represent(params, states.observation)
    logits, value = self.predict(params, latent)
    return mcts.RootFnOutput(prior_logits=logits, value=value,
                             embedding=self.root_embedding(states, latent))

  def root_embedding(self, states, latent):
    """What the search carries from the root: the latent ``[B, *L]``."""
    del states
    return latent

  def recurrent_fn(self, params, rng_key, action, embedding):
    """One step of the learned model from latents ``[B, *L]``; with the
    episode-end head, the discount is scaled by the probability that the
    episode goes on."""
    del rng_key
    latent, reward_logits = self.nets.dynamics(params, embedding, action)
    logits, value = self.predict(params, latent)
    discount = jnp.full_like(value, self.model_discount)
    if self.config.end_weight > 0:
      discount = discount * jax.nn.sigmoid(
          -self.nets.predict_end(params, latent))
    out = mcts.RecurrentFnOutput(
        reward=self.support.logits_to_scalar(reward_logits),
        discount=discount, prior_logits=logits, value=value)
    return out, latent

  def act(self, params, rng_key, states, greedy: bool = False,
          temperature=1.0):
    """Searches from a batch of states; returns mcts.PolicyOutput.

    ``greedy``: no Gumbel / Dirichlet noise and temperature 0;
    ``temperature`` (``[]``): else the action's temperature (Gumbel: the
    scale of the root's Gumbel noise).
    """
    policy = (mcts.gumbel_muzero_policy if self.config.policy == "gumbel"
              else mcts.muzero_policy)
    return policy(params, rng_key, self.root(params, states),
                  self.recurrent_fn, self.config.num_simulations,
                  invalid_actions=~states.legal_action_mask,
                  **acting_arguments(self.config, self.env, greedy,
                                     temperature))

  def make_loss(self):
    """``loss_fn(params, batch) -> (loss, metrics)``: see :func:`make_loss`."""
    return make_loss(self)


def acting_arguments(config: Config, env, greedy: bool, temperature=1.0):
  """The keyword arguments of the policy ``config.policy`` names (Gumbel:
  the considered actions and the Gumbel noise, scaled by ``temperature``;
  pUCT: the root's Dirichlet noise and ``temperature``); ``greedy``: no
  noise and temperature 0."""
  if config.policy == "gumbel":
    # argmax(T g + x) with g ~ Gumbel(0, 1) draws from softmax(x / T).
    return dict(max_num_considered_actions=min(
        config.max_num_considered_actions, env.num_actions),
                gumbel_scale=0.0 if greedy else temperature)
  return dict(dirichlet_fraction=0.0 if greedy else 0.25,
              temperature=0.0 if greedy else temperature)


def net_config(config: Config, env) -> NetConfig:
  """The network sizes of ``config`` for ``env``'s actions; the
  convolutional torso needs an image observation ``[H, W, C]``."""
  if config.torso == "conv" and len(env.observation_shape) != 3:
    raise ValueError(
        "torso 'conv' (--torso) needs an image observation [H, W, C], got "
        f"observation shape {tuple(env.observation_shape)} for env "
        f"{config.env!r}")
  return NetConfig(
      num_actions=env.num_actions, width=config.width,
      latent_size=config.latent_size, repr_blocks=config.repr_blocks,
      dyn_blocks=config.dyn_blocks, pred_blocks=config.pred_blocks,
      value_bins=config.value_bins,
      projection_size=(config.latent_size if config.consistency_weight > 0
                       else 0),
      observation_size=(math.prod(env.observation_shape)
                        if config.reconstruction_weight > 0 else 0),
      end_head=config.end_weight > 0, torso=config.torso,
      channels=config.channels,
      shard_rows=shard_rows(config))


def make_support(config: Config) -> Support:
  """The categorical support of values and rewards."""
  return Support(config.value_min, config.value_max, config.value_bins)


def make_agent(config: Config, env) -> MuZeroAgent:
  return MuZeroAgent(config=config, env=env,
                     nets=make_networks(net_config(config, env)),
                     support=make_support(config))


def make_loss(agent: MuZeroAgent):
  """``loss_fn(params, batch) -> (loss, metrics)`` for K =
  :func:`agents.config.unroll_steps` (0: policy and value at ``obs_t``
  only, AlphaZero's loss).

  batch: ``observation [B, ...]``, ``actions [B, K]`` and ``targets``
  (``value``, ``reward``, ``terminal`` ``[B, K+1]``, ``policy [B, K+1,
  A]``, ``alive [B, K+1]``:
  :func:`agents.training.targets.compute_targets`); with
  ``config.consistency_weight`` or ``config.reconstruction_weight`` > 0
  also ``next_observations [B, K, ...]`` (``o_{t+1..t+K}``). metrics:
  ``loss``, ``policy_loss``, ``value_loss``, ``reward_loss``, with the
  consistency term also ``consistency_loss``, with the reconstruction also
  ``reconstruction_loss``, with the episode-end head also ``end_loss``
  (scalars).
  """
  config, support, nets = agent.config, agent.support, agent.nets
  K = unroll_steps(config)
  consistency = config.consistency_weight > 0 and K > 0
  reconstruction = config.reconstruction_weight > 0
  end = config.end_weight > 0
  rows = shard_rows(config)

  def loss_fn(params, batch):
    targets = batch["targets"]
    latent = nets.represent(params, batch["observation"])
    policy_losses, value_losses, reward_losses = [], [], []
    reconstruction_losses, end_losses = [], []
    if consistency:
      goals = consistency_targets(nets, params, batch["next_observations"],
                                  targets["alive"][:, 1:])
      consistency_losses = []
    for k in range(K + 1):
      if k > 0:
        latent, reward_logits = nets.dynamics(params, latent,
                                              batch["actions"][:, k - 1])
        latent = scale_gradient(latent, 0.5)
        reward_losses.append(cross_entropy(
            support.scalar_to_two_hot(targets["reward"][:, k]),
            reward_logits) * jnp.where(targets["terminal"][:, k],
                                       config.terminal_reward_weight, 1.0))
        if consistency:
          alive = targets["alive"][:, k]
          consistency_losses.append(negative_cosine_similarity(
              nets.predict_projection(
                  params, nets.project(params, latent, alive), alive),
              goals[:, k - 1]))
      if reconstruction:
        seen = (batch["observation"] if k == 0
                else batch["next_observations"][:, k - 1])
        reconstruction_losses.append(reconstruction_error(
            nets.decode(params, latent), seen))
      if end:
        end_losses.append(optax.sigmoid_binary_cross_entropy(
            nets.predict_end(params, latent),
            1.0 - targets["alive"][:, k].astype(latent.dtype)))
      logits, value_logits = nets.predict(params, latent)
      policy_losses.append(
          cross_entropy(targets["policy"][:, k], logits)
          * targets["alive"][:, k])
      value_losses.append(cross_entropy(
          support.scalar_to_two_hot(targets["value"][:, k]), value_logits))
    policy_loss = jnp.mean(jnp.stack(policy_losses, 1))
    value_loss = jnp.mean(jnp.stack(value_losses, 1))
    reward_loss = (jnp.mean(jnp.stack(reward_losses, 1)) if K > 0
                   else jnp.zeros(()))
    loss = (policy_loss + config.value_loss_weight * value_loss
            + reward_loss)
    metrics = dict(policy_loss=policy_loss, value_loss=value_loss,
                   reward_loss=reward_loss)
    if consistency:
      metrics["consistency_loss"] = masked_mean(
          jnp.stack(consistency_losses, 1), targets["alive"][:, 1:], rows)
      loss = loss + config.consistency_weight * metrics["consistency_loss"]
    if reconstruction:
      metrics["reconstruction_loss"] = masked_mean(
          jnp.stack(reconstruction_losses, 1), targets["alive"], rows)
      loss = (loss + config.reconstruction_weight
              * metrics["reconstruction_loss"])
    if end:
      metrics["end_loss"] = jnp.mean(jnp.stack(end_losses, 1))
      loss = loss + config.end_weight * metrics["end_loss"]
    return loss, dict(loss=loss, **metrics)

  return loss_fn


def reconstruction_error(logits, observation):
  """``[B]``: the mean over features of the sigmoid cross-entropy between
  the decoder's ``logits [B, F]`` and ``observation [B, ...]`` (features
  in ``[0, 1]``)."""
  target = observation.reshape(observation.shape[0], -1).astype(
      logits.dtype)
  return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, target),
                  axis=-1)


def consistency_targets(nets: MuZeroNets, params, next_observations, alive):
  """``o_{t+1..t+K} [B, K, ...] -> [B, K, P]``: the target branch of the
  consistency loss (EfficientZero), ``stop_gradient(g(h(o_{t+k})))``, the
  projected representations, through which no gradient flows; the batch
  statistics of step k are those of its rows where ``alive [B, K]``."""
  z = [nets.project(params, nets.represent(params, next_observations[:, k]),
                    alive[:, k])
       for k in range(next_observations.shape[1])]
  return jax.lax.stop_gradient(jnp.stack(z, axis=1))
