"""A trained agent as an object: ``agents.load(run_dir)``.

    import agents, envs, jax
    player = agents.load("runs/tictactoe-muzero-...")   # a training run
    env = player.env                                     # the game it plays
    states = jax.vmap(env.init)(jax.random.split(jax.random.PRNGKey(0), 8))
    actions = player.act(states)                         # [8] greedy moves

A :class:`Player` searches from a batch of environment states with the
network of the run (MuZero: its learned model; AlphaZero: the true rules)
and the run's policy (Gumbel MuZero or pUCT), greedily (no root noise, the
search's choice) or sampled (root noise, the action drawn from the search's
``action_weights``), with the run's number of simulations or another one.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
from typing import Any, Callable, Dict, Optional, Tuple

import jax
import jax.numpy as jnp

import envs
import mcts
from agents import algorithms
from agents import config as config_lib
from agents.runs import checkpoints
from agents.runs.processes import fetch
from agents.runs.run_dir import CHECKPOINT_DIR, RunError, load_run_config
from agents.training.parallel import make_mesh
from agents.training.state import sharded_init_state, state_shardings


class LoadError(Exception):
  """A run directory is missing, is not a training run, or its checkpoint
  is missing or corrupted."""


def load_params(run_dir: str, agent) -> Tuple[Any, Dict]:
  """``(params, checkpoint metadata)`` of ``agent``'s run in ``run_dir``.

  The one function that reads a run's checkpoint (raises
  :class:`agents.runs.checkpoints.CheckpointError`): its latest orbax
  checkpoint, restored on as many local devices as divide the run's shards.
  """
  mesh = make_mesh(math.gcd(len(jax.devices()), agent.config.num_shards))
  target = checkpoints.abstract_target(
      jax.eval_shape(lambda: sharded_init_state(agent, mesh)),
      state_shardings(agent, mesh))
  state, meta = checkpoints.restore(os.path.join(run_dir, CHECKPOINT_DIR),
                                    target)
  return fetch(state.params), meta


@functools.lru_cache(maxsize=32)
def _jitted_search(agent, greedy: bool) -> Callable:
  """``search(params, key, states)``, jitted once per agent (equal agents:
  one config and env; so that every Player of a run shares its
  compilations)."""
  return jax.jit(lambda params, key, states: agent.act(params, key, states,
                                                       greedy=greedy))


class Player:
  """A trained agent that acts on batches of environment states.

  Attributes: ``env`` (the environment object), ``env_name``, ``algo``
  ("muzero", "alphazero" or "stochastic_muzero"), ``policy`` ("gumbel" or
  "muzero"), ``num_simulations``, ``config`` (the run's
  :class:`agents.config.Config`), ``params``, ``iteration`` (training
  iterations behind the params, if known), ``run_dir`` (if loaded from one)
  and ``agent`` (its :mod:`agents.algorithms` agent; built from ``config``
  unless an agent of that config is given).
  """

  def __init__(self, config: config_lib.Config, params: Any, *,
               num_simulations: Optional[int] = None,
               iteration: Optional[int] = None,
               run_dir: Optional[str] = None, agent=None):
    if num_simulations is not None:
      if (isinstance(num_simulations, bool)
          or not isinstance(num_simulations, int) or num_simulations < 1):
        raise ValueError("num_simulations must be a positive integer, got "
                         f"{num_simulations!r}")
      config = dataclasses.replace(config, num_simulations=num_simulations)
    self.config = config
    if agent is None or agent.config != config:
      env = envs.make(config.env) if agent is None else agent.env
      agent = algorithms.make_agent(config, env)
    self.agent = agent
    self.env = agent.env
    self.params = params
    self.iteration = iteration
    self.run_dir = run_dir

  env_name = property(lambda self: self.config.env)
  algo = property(lambda self: self.config.algo)
  policy = property(lambda self: self.config.policy)
  num_simulations = property(lambda self: self.config.num_simulations)

  def __repr__(self):
    return (f"Player({self.env_name}, {self.algo}, policy={self.policy}, "
            f"simulations={self.num_simulations}, "
            f"iteration={self.iteration}, run_dir={self.run_dir!r})")

  def with_simulations(self, num_simulations: int) -> "Player":
    """The same agent searching with ``num_simulations`` per move."""
    return Player(self.config, self.params, num_simulations=num_simulations,
                  iteration=self.iteration, run_dir=self.run_dir,
                  agent=self.agent)

  def _check_states(self, states) -> None:
    mask = getattr(states, "legal_action_mask", None)
    shape = getattr(mask, "shape", None)
    if shape is None or len(shape) != 2 or shape[1] != self.env.num_actions:
      raise ValueError(
          f"states: expected a batch of {self.env_name} states (a "
          f"legal_action_mask of shape [B, {self.env.num_actions}]), got "
          f"legal_action_mask of shape {shape}; batch single states with "
          "jax.vmap(env.init) or jax.tree.map(lambda x: x[None], state)")

  def search(self, states, key: Optional[jax.Array] = None, *,
             greedy: bool = True) -> mcts.PolicyOutput:
    """The search from ``states`` (a batch ``[B]``): ``PolicyOutput`` with
    ``action [B]`` (the search's choice), ``action_weights [B, A]`` and
    ``search_tree`` (``.summary()``: visit counts/probs, Q-values, value,
    from the point of view of the player to move).

    ``greedy``: no root noise (Gumbel scale 0 / no Dirichlet noise,
    temperature 0); otherwise the self-play search, with noise.
    """
    self._check_states(states)
    if key is None:
      key = jax.random.PRNGKey(0)
    return _jitted_search(self.agent, bool(greedy))(self.params, key, states)

  def act(self, states, key: Optional[jax.Array] = None, *,
          greedy: bool = True) -> jax.Array:
    """int32 ``[B]`` moves for a batch of states.

    ``greedy=True``: the noiseless search's choice (``key`` may be None).
    ``greedy=False``: a move drawn from the ``action_weights`` of a search
    with root noise (needs ``key``).
    """
    if not greedy and key is None:
      raise ValueError("key: sampled moves (greedy=False) need a PRNG key")
    if greedy:
      return self.search(states, key).action
    search_key, sample_key = jax.random.split(key)
    out = self.search(states, search_key, greedy=False)
    return sample_action(sample_key, out, states.legal_action_mask)


def sample_action(key: jax.Array, out: mcts.PolicyOutput,
                  legal_action_mask: jax.Array) -> jax.Array:
  """int32 ``[B]`` moves drawn from ``out.action_weights`` ``[B, A]``,
  among the legal ones (``legal_action_mask`` bool ``[B, A]``)."""
  logits = jnp.where(legal_action_mask,
                     jnp.log(jnp.maximum(out.action_weights, 1e-30)),
                     -jnp.inf)
  return jax.random.categorical(key, logits).astype(jnp.int32)


def load(run_dir: str, *, num_simulations: Optional[int] = None) -> Player:
  """The agent of the training run in ``run_dir`` (its latest checkpoint).

  ``num_simulations``: search with this many simulations per move instead
  of the run's. Raises :class:`LoadError` for a missing directory, one that
  is not a training run, or a missing or corrupted checkpoint.
  """
  run_dir = os.fspath(run_dir)
  try:
    config = load_run_config(run_dir, what="run_dir")
    agent = algorithms.make_agent(config, envs.make(config.env))
    params, meta = load_params(run_dir, agent)
  except (RunError, checkpoints.CheckpointError) as e:
    raise LoadError(str(e)) from e
  return Player(config, params, num_simulations=num_simulations,
                iteration=meta.get("iteration"), run_dir=run_dir, agent=agent)
