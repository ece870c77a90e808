"""The state of a training run and its layout over devices.

:class:`TrainState` is everything an iteration reads and writes: parameters,
optimizer state, replay buffer, the self-play environments (actors), the
random key and the iteration count. Its initial value is a pure function of
the agent (its config's seed), so that a run is reproducible; over a mesh,
the replay buffer and actors are sharded on their environment axis and the
rest replicated (:mod:`agents.training.parallel`).
"""
from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from agents.config import Config
from agents.training import parallel
from agents.training import replay
from agents.training.selfplay import ActorState, init_actor, stores_legal
from agents.training.targets import window_length


class TrainState(NamedTuple):
  """A run's state; ``buffer`` and ``actor`` hold ``N = num_envs``
  environments' columns ``[C, N, ...]`` and ``[N, ...]``."""
  params: Any
  opt_state: Any
  buffer: replay.ReplayBuffer
  actor: ActorState
  rng_key: jax.Array
  iteration: jax.Array   # int32: completed training iterations.


def make_optimizer(config: Config):
  """Adam(W) with global-norm gradient clipping; with ``lr_decay`` the rate
  follows a cosine from ``learning_rate`` to 10% of it over ``steps``
  iterations (extending ``steps`` on resume changes the schedule from
  there on)."""
  lr = config.learning_rate
  if config.lr_decay:
    lr = optax.cosine_decay_schedule(
        config.learning_rate, config.steps * config.updates_per_iter,
        alpha=0.1)
  return optax.chain(
      optax.clip_by_global_norm(config.max_grad_norm),
      optax.adamw(lr, weight_decay=config.weight_decay))


def _example_step(config: Config, env):
  """One environment's replay step (shapes and dtypes), as self-play
  records it."""
  state = env.init(jax.random.PRNGKey(0))
  step = dict(
      observation=state.observation, action=jnp.int32(0),
      reward=jnp.float32(0), done=jnp.bool_(False),
      explored=jnp.bool_(False),
      policy=jnp.zeros(env.num_actions, jnp.float32), value=jnp.float32(0))
  if stores_legal(config):
    step["legal"] = jnp.zeros(env.num_actions, jnp.bool_)
  return step


def check_replay_capacity(config, env) -> None:
  """Raises ValueError (naming ``--replay-capacity``) unless the replay of
  each environment holds a replayed window (K + n + 1 steps) and one
  iteration's self-play steps."""
  length = window_length(config, env)
  if config.replay_capacity < length + config.selfplay_steps:
    raise ValueError(
        f"replay_capacity (--replay-capacity) {config.replay_capacity} must "
        f"be at least the replayed window ({length} steps: K + n + 1) + "
        f"the self-play steps of an iteration ({config.selfplay_steps}) = "
        f"{length + config.selfplay_steps}")


def init_train_state(agent) -> TrainState:
  """The initial state of ``agent``'s run, a pure function of its
  ``config.seed``."""
  config, env = agent.config, agent.env
  check_replay_capacity(config, env)
  key = jax.random.PRNGKey(config.seed)
  key, params_key, actor_key = jax.random.split(key, 3)
  obs = env.init(jax.random.PRNGKey(0)).observation[None]
  params = agent.nets.init(params_key, obs)
  opt_state = make_optimizer(config).init(params)
  buffer = replay.init(_example_step(config, env), config.replay_capacity,
                       config.num_envs)
  actor = init_actor(env, actor_key, config.num_envs)
  return TrainState(params=params, opt_state=opt_state, buffer=buffer,
                    actor=actor, rng_key=key,
                    iteration=jnp.zeros((), jnp.int32))


@functools.lru_cache(maxsize=16)
def abstract_state(agent) -> TrainState:
  """The shapes and dtypes of :func:`init_train_state` (nothing computed;
  traced once per agent: equal agents, one config and env)."""
  return jax.eval_shape(lambda: init_train_state(agent))


def state_shardings(agent, mesh) -> TrainState:
  """The ``NamedSharding``s of ``agent``'s TrainState over ``mesh``."""
  return parallel.state_shardings(abstract_state(agent), mesh)


def sharded_init_state(agent, mesh) -> TrainState:
  """:func:`init_train_state` laid out over ``mesh`` as
  :func:`state_shardings` says (each process creates only its own
  shards)."""
  parallel.check_devices(agent.config, mesh.size)
  return _jitted_init(agent, mesh)()


@functools.lru_cache(maxsize=16)
def _jitted_init(agent, mesh):
  """:func:`init_train_state` jitted onto ``mesh``, once per agent and mesh
  (a run that starts, resumes and evaluates traces and compiles it once)."""
  return jax.jit(lambda: init_train_state(agent),
                 out_shardings=state_shardings(agent, mesh))
