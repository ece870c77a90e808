"""Jitted, batched self-play.

``make_selfplay`` builds ONE jitted-able function that plays ``T`` lockstep
steps of a batch of environments with ``lax.scan``, searching with the
agent (:mod:`agents.algorithms`), exploring as the config says, auto-resetting
finished environments, and returns the trajectory to store in the replay
buffer.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from agents.config import Config


def batch_select(pred, on_true, on_false):
  """Per batch element ``where(pred[b], on_true[b], on_false[b])``."""
  def sel(a, b):
    p = pred.reshape(pred.shape + (1,) * (a.ndim - 1))
    return jnp.where(p, a, b)
  return jax.tree.map(sel, on_true, on_false)


def random_action(key, states):
  """A uniformly random legal action ``[B]`` of each of a batch of states
  (``legal_action_mask [B, A]``)."""
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


def temperature_at(config: Config, iteration):
  """Self-play's temperature ``[]`` after ``iteration`` (``[]`` int)
  completed iterations: value ``i`` of the ``n`` of ``config.temperature``
  in the ``i``-th of ``n`` equal stretches of ``config.steps`` iterations,
  the last one after them."""
  n = len(config.temperature)
  stretch = jnp.minimum(iteration * n // config.steps, n - 1)
  return jnp.asarray(config.temperature, jnp.float32)[stretch]


def make_selfplay(agent, num_steps: int):
  """``selfplay(params, actor, key, temperature) -> (actor, trajectory,
  stats)``: ``T = num_steps`` steps of ``N`` environments, each move
  searched by ``agent`` (``agent.act``, at ``temperature`` ``[]``).

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

  def selfplay(params, actor: ActorState, key, temperature=1.0):
    def one_step(actor, key):
      act_key, reset_key = jax.random.split(key)
      states = actor.env_state
      act_key, sample_key, coin_key, random_key = jax.random.split(act_key, 4)
      out = agent.act(params, act_key, states, temperature=temperature)
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
        action = jnp.where(explored, random_action(random_key, states),
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
