"""Search-based acting and jitted, batched self-play.

``Agent`` wraps the networks into the two functions a search needs:

* MuZero (learned model): the root embedding is ``represent(observation)``;
  ``recurrent_fn`` applies ``dynamics`` then ``predict``; ``discount`` is -1
  for two-player games (values from the point of view of the player to move)
  and ``config.discount`` for single-player games.
* AlphaZero: the embedding is the TRUE environment state; ``recurrent_fn``
  steps the environment (vmapped) and evaluates ``predict(represent(obs))``
  at the new state; reward and discount come from the environment
  (discount -1 between plies of a two-player game, 0 once terminated, where
  the value is 0 too); illegal actions get a very low prior.

``make_selfplay`` builds ONE jitted-able function that plays ``T`` lockstep
steps of a batch of environments with ``lax.scan``, auto-resetting finished
environments, and returns the trajectory to store in the replay buffer.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

import mcts
from agents.config import Config
from agents.networks import MuZeroNets
from agents.value_transform import Support

ILLEGAL_LOGIT = -1e9


def batch_select(pred, on_true, on_false):
  """Per batch element ``where(pred[b], on_true[b], on_false[b])``."""
  def sel(a, b):
    p = pred.reshape(pred.shape + (1,) * (a.ndim - 1))
    return jnp.where(p, a, b)
  return jax.tree.map(sel, on_true, on_false)


class Agent(NamedTuple):
  env: Any
  nets: MuZeroNets
  support: Support
  config: Config

  @property
  def two_player(self) -> bool:
    return self.env.num_players == 2

  @property
  def model_discount(self) -> float:
    return -1.0 if self.two_player else self.config.discount

  def predict(self, params, latent):
    logits, value_logits = self.nets.predict(params, latent)
    return logits, self.support.logits_to_scalar(value_logits)

  def root(self, params, states) -> mcts.RootFnOutput:
    latent = self.nets.represent(params, states.observation)
    logits, value = self.predict(params, latent)
    embedding = states if self.config.algo == "alphazero" else latent
    return mcts.RootFnOutput(prior_logits=logits, value=value,
                             embedding=embedding)

  def recurrent_fn(self, params, rng_key, action, embedding):
    del rng_key
    if self.config.algo == "alphazero":
      states = jax.vmap(self.env.step)(embedding, action)
      logits, value = self.predict(
          params, self.nets.represent(params, states.observation))
      logits = jnp.where(states.legal_action_mask, logits, ILLEGAL_LOGIT)
      done = states.terminated
      out = mcts.RecurrentFnOutput(
          reward=states.reward,
          discount=jnp.where(done, 0.0, self.model_discount),
          prior_logits=logits,
          value=jnp.where(done, 0.0, value))
      return out, states
    latent, reward_logits = self.nets.dynamics(params, embedding, action)
    logits, value = self.predict(params, latent)
    out = mcts.RecurrentFnOutput(
        reward=self.support.logits_to_scalar(reward_logits),
        discount=jnp.full_like(value, self.model_discount),
        prior_logits=logits, value=value)
    return out, latent

  def act(self, params, rng_key, states, greedy: bool = False):
    """Searches from a batch of states; returns mcts.PolicyOutput.

    ``greedy``: no Gumbel / Dirichlet noise and temperature 0.
    """
    root = self.root(params, states)
    invalid = ~states.legal_action_mask
    c = self.config
    if c.policy == "gumbel":
      return mcts.gumbel_muzero_policy(
          params, rng_key, root, self.recurrent_fn, c.num_simulations,
          invalid_actions=invalid,
          max_num_considered_actions=min(c.max_num_considered_actions,
                                         self.env.num_actions),
          gumbel_scale=0.0 if greedy else 1.0)
    return mcts.muzero_policy(
        params, rng_key, root, self.recurrent_fn, c.num_simulations,
        invalid_actions=invalid,
        dirichlet_fraction=0.0 if greedy else 0.25,
        temperature=0.0 if greedy else 1.0)


def _random_legal(key, states):
  logits = jnp.where(states.legal_action_mask, 0.0, -jnp.inf)
  return jax.random.categorical(key, logits).astype(jnp.int32)


class ActorState(NamedTuple):
  env_state: Any          # Batched env states [N].
  episode_return: Any     # float32 [N]: running return of player 0.


def stores_legal(config: Config) -> bool:
  """Whether self-play stores each step's legal-action mask: only for
  reanalyse (its searches need the root's invalid actions), so that a run
  without it keeps the replay layout (and checkpoints) of before."""
  return config.reanalyse_fraction > 0


def init_actor(env, key, num_envs: int) -> ActorState:
  states = jax.vmap(env.init)(jax.random.split(key, num_envs))
  return ActorState(states, jnp.zeros(num_envs, jnp.float32))


def make_selfplay(agent: Agent, num_steps: int):
  """``selfplay(params, actor, key) -> (actor, trajectory, stats)``.

  trajectory: dict of ``[T, N, ...]`` arrays: ``observation``, ``action``,
  ``reward`` (for the mover), ``done`` (episode ended by this step),
  ``explored`` (the action was a random exploration move),
  ``policy`` (search's action_weights) and ``value`` (search's root value),
  all from the point of view of the player to move; with reanalyse on
  (:func:`stores_legal`) also ``legal`` (``[T, N, A]`` bool, the legal moves
  of the observed position). stats, per environment
  (``[N]``, so that self-play on environments sharded over devices needs no
  cross-device sum): ``episodes`` finished and ``return_sum`` (player 0's
  returns summed over them).
  """
  env = agent.env

  def selfplay(params, actor: ActorState, key):
    def one_step(actor, key):
      act_key, reset_key = jax.random.split(key)
      states = actor.env_state
      act_key, sample_key, coin_key, random_key = jax.random.split(act_key, 4)
      out = agent.act(params, act_key, states)
      action = out.action
      c = agent.config
      if c.sample_plies > 0:
        sampled = jax.random.categorical(
            sample_key, jnp.log(jnp.maximum(out.action_weights, 1e-30)))
        action = jnp.where(states.step_count < c.sample_plies,
                           sampled.astype(jnp.int32), action)
      explored = jnp.zeros(action.shape, bool)
      if c.random_move_prob > 0:
        explored = (jax.random.uniform(coin_key, action.shape)
                    < c.random_move_prob)
      if c.random_opening_plies > 0:
        explored = explored | (states.step_count < c.random_opening_plies)
      if c.random_move_prob > 0 or c.random_opening_plies > 0:
        action = jnp.where(explored, _random_legal(random_key, states),
                           action)
      next_states = jax.vmap(env.step)(states, action)
      done = next_states.terminated
      ret = actor.episode_return + next_states.rewards[:, 0]
      record = dict(
          observation=states.observation, action=action,
          reward=next_states.reward, done=done, explored=explored,
          policy=out.action_weights,
          value=out.search_tree.summary().value)
      if stores_legal(c):
        record["legal"] = states.legal_action_mask
      fresh = jax.vmap(env.init)(jax.random.split(reset_key, done.shape[0]))
      new_actor = ActorState(batch_select(done, fresh, next_states),
                             jnp.where(done, 0.0, ret))
      stats = dict(episodes=done.astype(jnp.int32),
                   return_sum=jnp.where(done, ret, 0.0))
      return new_actor, (record, stats)

    actor, (traj, stats) = jax.lax.scan(
        one_step, actor, jax.random.split(key, num_steps))
    return actor, traj, jax.tree.map(lambda x: jnp.sum(x, 0), stats)

  return selfplay
