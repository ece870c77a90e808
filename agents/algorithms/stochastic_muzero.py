"""Stochastic MuZero (Antonoglou et al. 2022, "Planning in Stochastic
Environments with a Learned Model"): networks, acting and loss.

The model splits each environment step ``s --a--> s'`` into a deterministic
part and a chance part, through an *afterstate* ``as`` (the state after the
action, before the environment's randomness):

* representation   ``s^0 = h(o_t)``                         ``[B, D]``
* prediction       ``(p^k, v^k) = f(s^k)``        policy ``[B, A]``, value
* afterstate dynamics  ``as^k = phi(s^k, a)``                ``[B, D]``
* afterstate prediction ``(sigma^k, Q^k) = psi(as^k)``  chance outcome prior
  ``[B, C]``, afterstate value
* dynamics         ``(s^{k+1}, r^{k+1}) = g(as^k, c)``, ``c`` a one-hot
  chance code ``[B, C]``
* chance encoder   ``c^e = e(o_{t+k}, a_{t+k}, o_{t+k+1})`` ``[B, C]``: the
  code of what the environment did, from the observations around the step
  (the paper's ``e(o_{<=t+k+1})``). ``c = onehot(argmax c^e)``, with the
  straight-through gradient ``c^e + stop_gradient(c - c^e)`` (a VQ-VAE with
  the fixed codebook of the ``C`` one-hot vectors, as in the paper).

Loss (as in the paper), for a window starting at ``t``, ``k = 0..K``::

  sum_k  l_p(pi_{t+k}, p^k) + w_v l_v(z_{t+k}, v^k)
  + sum_{k<K} [ l_r(u_{t+k+1}, r^{k+1}) + w_v l_Q(z_{t+k}, Q^k)
                + l_sigma(c_{t+k+1}, sigma^k)
                + beta ||c_{t+k+1} - c^e_{t+k+1}||^2 ]
  + lambda (log C - H(mean_b c^e_b))

``z`` and ``u`` are the value and reward targets of
:mod:`agents.training.targets`
(categorical, two-hot); the afterstate value ``Q^k`` of the action played
is trained towards the state's value target ``z_{t+k}`` (the reward sits on
the chance edge, so ``Q(s, a) = E[r + d v(s')]``); the chance prior
``sigma^k`` towards the encoder's code ``c_{t+k+1}`` (cross-entropy, no
gradient into the encoder), and the commitment term pulls the encoder's
softmax ``c^e`` towards its own one-hot. Chance terms of a step whose next
observation belongs to another episode are masked.

The last term is not in the paper: with the paper's loss alone the encoder
collapses to a single code early in training (the chance prior then predicts
it with certainty, and the model is a deterministic one with an afterstate
in the middle; docs/stochastic_muzero.md). ``lambda``
(``code_usage_weight``; 0.5 in the 2048 defaults, 0 elsewhere) weighs the
entropy deficit of the encoder's mean soft code over the batch (masked rows
left out), the codebook diversity loss of wav2vec 2.0 (Baevski et al. 2020):
it asks that the batch as a whole use many codes, while the commitment term
keeps each step's code sharp.

Acting searches with :func:`mcts.stochastic_muzero_policy`: decision nodes
are states (pUCT over ``p``), chance nodes afterstates (outcomes visited in
proportion to ``sigma``), the reward and discount on the chance edge; with
``policy="gumbel"`` with :func:`mcts.gumbel_stochastic_muzero_policy`, the
same tree under Gumbel MuZero's rules (sequential halving at the root).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp

import mcts
from agents.algorithms.losses import cross_entropy, per_shard, scale_gradient
from agents.algorithms.muzero import (MuZeroAgent, NetConfig,
                                      acting_arguments, make_support,
                                      net_config, prediction, representation,
                                      scale_latent, torso)
from agents.config import Config, shard_rows, unroll_steps


@dataclasses.dataclass(frozen=True)
class StochasticNetConfig(NetConfig):
  num_codes: int = 32      # C, the number of chance codes.


class StochasticNets(NamedTuple):
  """Pure functions of ``params`` (haiku's ``multi_transform`` applies)."""
  init: Callable                 # (key, obs [B, ...]) -> params
  represent: Callable            # (params, obs) -> latent [B, D]
  predict: Callable              # (params, latent) -> (logits, value_logits)
  afterstate_dynamics: Callable  # (params, latent, action) -> afterstate
  afterstate_predict: Callable   # (params, afterstate) -> (chance_logits,
                                 #                          q_logits)
  dynamics: Callable             # (params, afterstate, code [B, C]) ->
                                 #     (latent, reward_logits)
  encode: Callable               # (params, obs, action, next_obs) ->
                                 #     code_logits [B, C]


def make_networks(config: StochasticNetConfig) -> StochasticNets:
  """Builds the six networks; ``init(key, obs [B, ...])`` makes params."""

  def forward():
    flat = lambda o: o.reshape(o.shape[0], -1).astype(jnp.float32)

    def represent(obs):
      return representation(obs, config)

    def predict(latent):
      return prediction(latent, config)

    def afterstate_dynamics(latent, action):
      a = jax.nn.one_hot(action, config.num_actions)
      x = torso(jnp.concatenate([latent, a], -1), config.width,
                config.dyn_blocks, "afterstate_dynamics")
      return scale_latent(hk.Linear(config.latent_size,
                                    name="afterstate_out")(x))

    def afterstate_predict(afterstate):
      x = torso(afterstate, config.width, config.pred_blocks,
                "afterstate_prediction")
      chance_logits = hk.Linear(config.num_codes, name="chance_head",
                                w_init=jnp.zeros)(x)
      q_logits = hk.Linear(config.value_bins, name="q_head",
                           w_init=jnp.zeros)(x)
      return chance_logits, q_logits

    def dynamics(afterstate, code):
      x = torso(jnp.concatenate([afterstate, code], -1), config.width,
                config.dyn_blocks, "dynamics")
      latent = scale_latent(hk.Linear(config.latent_size, name="dyn_out")(x))
      reward_logits = hk.Linear(config.value_bins, name="reward_head",
                                w_init=jnp.zeros)(x)
      return latent, reward_logits

    def encode(obs, action, next_obs):
      a = jax.nn.one_hot(action, config.num_actions)
      x = torso(jnp.concatenate([flat(obs), a, flat(next_obs)], -1),
                config.width, 1, "chance_encoder")
      return hk.Linear(config.num_codes, name="code_out")(x)

    def init(obs):
      action = jnp.zeros(obs.shape[0], jnp.int32)
      latent = represent(obs)
      afterstate = afterstate_dynamics(latent, action)
      afterstate_predict(afterstate)
      code = encode(obs, action, obs)
      next_latent, _ = dynamics(afterstate, code)
      return predict(next_latent)

    return init, (represent, predict, afterstate_dynamics,
                  afterstate_predict, dynamics, encode)

  transformed = hk.without_apply_rng(hk.multi_transform(forward))
  return StochasticNets(transformed.init, *transformed.apply)


def straight_through_code(code_logits):
  """``(code, hard, soft)`` for encoder logits ``[B, C]``: ``hard`` the
  one-hot of the argmax, ``soft`` the softmax, ``code`` equal to ``hard``
  with the gradient of ``soft``."""
  soft = jax.nn.softmax(code_logits, axis=-1)
  hard = jax.nn.one_hot(jnp.argmax(code_logits, axis=-1),
                        code_logits.shape[-1], dtype=soft.dtype)
  return soft + jax.lax.stop_gradient(hard - soft), hard, soft


class StochasticAgent(MuZeroAgent):
  """:class:`~agents.algorithms.muzero.MuZeroAgent` (same fields, ``root``
  and ``predict``) acting with :func:`mcts.stochastic_muzero_policy` (or
  :func:`mcts.gumbel_stochastic_muzero_policy`) on the learned model;
  ``nets`` are :class:`StochasticNets` (the inherited ``recurrent_fn``, of
  a model without chance, does not apply)."""

  @property
  def reads_next_observations(self) -> bool:
    """The chance encoder reads ``o_{t+1..t+K}`` (K > 0)."""
    return unroll_steps(self.config) > 0

  def decision_recurrent_fn(self, params, rng_key, action, latent):
    del rng_key
    afterstate = self.nets.afterstate_dynamics(params, latent, action)
    chance_logits, q_logits = self.nets.afterstate_predict(params,
                                                           afterstate)
    return mcts.DecisionRecurrentFnOutput(
        chance_logits=chance_logits,
        afterstate_value=self.support.logits_to_scalar(q_logits)), afterstate

  def chance_recurrent_fn(self, params, rng_key, outcome, afterstate):
    del rng_key
    code = jax.nn.one_hot(outcome, self.config.num_chance_codes)
    latent, reward_logits = self.nets.dynamics(params, afterstate, code)
    logits, value_logits = self.nets.predict(params, latent)
    value = self.support.logits_to_scalar(value_logits)
    return mcts.ChanceRecurrentFnOutput(
        action_logits=logits, value=value,
        reward=self.support.logits_to_scalar(reward_logits),
        discount=jnp.full_like(value, self.model_discount)), latent

  def act(self, params, rng_key, states, greedy: bool = False,
          temperature=1.0):
    """Searches from a batch of states; returns mcts.PolicyOutput.

    ``config.policy``: "muzero" searches by pUCT
    (:func:`mcts.stochastic_muzero_policy`), "gumbel" by Gumbel MuZero's
    rules at decision nodes (:func:`mcts.gumbel_stochastic_muzero_policy`).
    ``greedy``: no Gumbel / Dirichlet noise and temperature 0;
    ``temperature`` (``[]``): else the action's temperature (Gumbel: the
    scale of the root's Gumbel noise).
    """
    policy = (mcts.gumbel_stochastic_muzero_policy
              if self.config.policy == "gumbel"
              else mcts.stochastic_muzero_policy)
    return policy(params, rng_key, self.root(params, states),
                  self.decision_recurrent_fn, self.chance_recurrent_fn,
                  self.config.num_simulations,
                  invalid_actions=~states.legal_action_mask,
                  **acting_arguments(self.config, self.env, greedy,
                                     temperature))

  def make_loss(self):
    """``loss_fn(params, batch) -> (loss, metrics)``: see :func:`make_loss`."""
    return make_loss(self)


def make_agent(config: Config, env) -> StochasticAgent:
  sizes = StochasticNetConfig(
      **dataclasses.asdict(net_config(config, env)),
      num_codes=config.num_chance_codes)
  return StochasticAgent(config=config, env=env, nets=make_networks(sizes),
                         support=make_support(config))


def code_entropy_deficit(soft, mask, rows: int = 0):
  """``log C - H(p_bar)`` ``[]``, ``p_bar = sum_b m_b soft_b / sum_b m_b``
  the mean code of the rows with ``mask [B]`` set, for soft codes
  ``[B, C]``: 0 when the batch uses all ``C`` codes equally, ``log C`` when
  it uses one; the mean over the batch's shards of ``rows`` rows
  (:func:`~agents.algorithms.losses.per_shard`)."""
  def deficit(soft, mask):
    weights = mask / jnp.maximum(jnp.sum(mask), 1.0)
    p_bar = jnp.sum(soft * weights[:, None], axis=0)
    entropy = -jnp.sum(p_bar * jnp.log(jnp.maximum(p_bar, 1e-12)))
    return jnp.log(float(soft.shape[-1])) - entropy
  return jnp.mean(per_shard(deficit, rows, soft, mask))


def make_loss(agent: StochasticAgent):
  """``loss_fn(params, batch) -> (loss, metrics)`` (see the module
  docstring), for K = :func:`agents.config.unroll_steps`.

  batch: ``observation [B, ...]``, ``next_observations [B, K, ...]``
  (``o_{t+1..t+K}``), ``actions [B, K]`` and ``targets`` from
  :func:`agents.training.targets.compute_targets` (``value``, ``reward``
  ``[B, K+1]``, ``policy [B, K+1, A]``, ``alive [B, K+1]``).
  """
  config = agent.config
  K = unroll_steps(config)
  nets, support = agent.nets, agent.support
  rows = shard_rows(config)
  two_hot = support.scalar_to_two_hot

  def loss_fn(params, batch):
    targets = batch["targets"]
    alive = targets["alive"].astype(jnp.float32)
    obs = batch["observation"]
    latent = nets.represent(params, obs)
    terms = {name: [] for name in ("policy_loss", "value_loss",
                                   "reward_loss", "q_loss", "chance_loss",
                                   "commitment_loss", "code_usage_loss")}
    for k in range(K + 1):
      logits, value_logits = nets.predict(params, latent)
      terms["policy_loss"].append(
          cross_entropy(targets["policy"][:, k], logits) * alive[:, k])
      terms["value_loss"].append(
          cross_entropy(two_hot(targets["value"][:, k]), value_logits))
      if k == K:
        break
      action = batch["actions"][:, k]
      afterstate = nets.afterstate_dynamics(params, latent, action)
      chance_logits, q_logits = nets.afterstate_predict(params, afterstate)
      terms["q_loss"].append(
          cross_entropy(two_hot(targets["value"][:, k]), q_logits))
      next_obs = batch["next_observations"][:, k]
      code, hard, soft = straight_through_code(
          nets.encode(params, obs, action, next_obs))
      same_episode = alive[:, k + 1]
      terms["chance_loss"].append(
          cross_entropy(hard, chance_logits) * same_episode)
      terms["commitment_loss"].append(
          jnp.sum(jnp.square(hard - soft), -1) * same_episode)
      terms["code_usage_loss"].append(
          code_entropy_deficit(soft, same_episode, rows)[None])
      latent, reward_logits = nets.dynamics(params, afterstate, code)
      latent = scale_gradient(latent, 0.5)
      terms["reward_loss"].append(
          cross_entropy(two_hot(targets["reward"][:, k + 1]),
                         reward_logits))
      obs = next_obs
    metrics = {name: (jnp.mean(jnp.stack(v, 1)) if v else jnp.zeros(()))
               for name, v in terms.items()}
    loss = (metrics["policy_loss"]
            + config.value_loss_weight * (metrics["value_loss"]
                                          + metrics["q_loss"])
            + metrics["reward_loss"] + metrics["chance_loss"]
            + config.commitment_weight * metrics["commitment_loss"]
            + config.code_usage_weight * metrics["code_usage_loss"])
    metrics["loss"] = loss
    return loss, metrics

  return loss_fn
