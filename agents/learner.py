"""Learning: the K-step unrolled MuZero loss, the AlphaZero loss, and the
jitted training iteration (self-play + replay + updates in ONE function).

MuZero loss, for a window starting at replay step ``t`` (K = unroll_steps):
the representation encodes ``obs_t``; the dynamics is unrolled along the
actions ``a_t .. a_{t+K-1}`` that were actually played; at every unrolled
state ``k = 0..K`` the prediction network is trained towards

* policy: the search's ``action_weights`` at ``t+k`` (cross-entropy),
* value: the n-step return ``z_{t+k} = sum_{i<n} d^i r_{t+k+i} +
  d^n v_{t+k+n}`` (``d`` = -1 between plies of a two-player game, the
  discount otherwise; ``v`` = the search's root value; terms past the end of
  the episode are dropped, so with ``n`` >= the episode length this is the
  final outcome from the mover's point of view),

and the dynamics' reward head at ``k = 1..K`` towards ``r_{t+k-1}``. Values
and rewards are categorical (two-hot targets, see
:mod:`agents.value_transform`). Unroll steps past the end of the episode are
*absorbing*: value and reward targets 0, no policy loss. As in MuZero, the
gradient through the hidden state is halved at each dynamics step.

AlphaZero loss: the same with K = 0 and no reward (policy + value at
``obs_t``). Stochastic MuZero (``algo="stochastic_muzero"``): its agent and
loss live in :mod:`agents.stochastic`, on the same targets, with the
observations ``o_{t+1..t+K}`` added to the batch for its chance encoder.

MuZero Reanalyse (``config.reanalyse_fraction``, :mod:`agents.reanalyse`):
a fraction of each batch gets its policy targets and bootstrap values from
fresh searches with the current parameters (see :func:`make_batch`).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Dict, NamedTuple

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax

from agents import parallel
from agents import reanalyse
from agents import replay
from agents import stochastic
from agents.config import Config, reanalyse_rows
from agents.networks import NetConfig, make_networks
from agents.selfplay import (Agent, ActorState, init_actor, make_selfplay,
                             stores_legal)
from agents.value_transform import Support


class TrainState(NamedTuple):
  params: Any
  opt_state: Any
  buffer: replay.ReplayBuffer
  actor: ActorState
  rng_key: jax.Array
  iteration: jax.Array   # int32: completed training iterations.


def make_agent(config: Config, env) -> Agent:
  if config.algo == "stochastic_muzero":
    return stochastic.make_agent(config, env)
  net_config = NetConfig(
      num_actions=env.num_actions, width=config.width,
      latent_size=config.latent_size, repr_blocks=config.repr_blocks,
      dyn_blocks=config.dyn_blocks, pred_blocks=config.pred_blocks,
      value_bins=config.value_bins)
  support = Support(config.value_min, config.value_max, config.value_bins)
  return Agent(env=env, nets=make_networks(net_config), support=support,
               config=config)


def unroll_steps(config: Config) -> int:
  return 0 if config.algo == "alphazero" else config.unroll_steps


def td_steps(config: Config, env) -> int:
  if config.td_steps is not None:
    return config.td_steps
  if env.max_episode_steps is None:
    raise ValueError(f"{env.name} has no known episode length: set td_steps")
  return int(env.max_episode_steps)


def window_length(config: Config, env) -> int:
  return unroll_steps(config) + td_steps(config, env) + 1


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


def _example_step(env, agent: Agent):
  state = env.init(jax.random.PRNGKey(0))
  step = dict(
      observation=state.observation, action=jnp.int32(0),
      reward=jnp.float32(0), done=jnp.bool_(False),
      explored=jnp.bool_(False),
      policy=jnp.zeros(env.num_actions, jnp.float32), value=jnp.float32(0))
  if stores_legal(agent.config):
    step["legal"] = jnp.zeros(env.num_actions, jnp.bool_)
  return step


def init_train_state(config: Config, env, agent: Agent) -> TrainState:
  """The initial state of a run, a pure function of ``config.seed``."""
  length = window_length(config, env)
  if config.replay_capacity < length + config.selfplay_steps:
    raise ValueError(
        f"replay_capacity ({config.replay_capacity}) must be at least the "
        f"unroll window ({length}) + selfplay_steps ({config.selfplay_steps})")
  key = jax.random.PRNGKey(config.seed)
  key, params_key, actor_key = jax.random.split(key, 3)
  obs = env.init(jax.random.PRNGKey(0)).observation[None]
  params = agent.nets.init(params_key, obs)
  opt_state = make_optimizer(config).init(params)
  buffer = replay.init(_example_step(env, agent), config.replay_capacity,
                       config.num_envs)
  actor = init_actor(env, actor_key, config.num_envs)
  return TrainState(params=params, opt_state=opt_state, buffer=buffer,
                    actor=actor, rng_key=key,
                    iteration=jnp.zeros((), jnp.int32))


def _global_norm(tree):
  tree_api = getattr(optax, "tree", None)
  if tree_api is not None and hasattr(tree_api, "norm"):
    return tree_api.norm(tree)
  return optax.global_norm(tree)


def _scale_gradient(x, scale):
  return x * scale + jax.lax.stop_gradient(x) * (1.0 - scale)


def _cross_entropy(target_probs, logits):
  return -jnp.sum(target_probs * jax.nn.log_softmax(logits), axis=-1)


def _bootstrap(config: Config, env, window: Dict[str, jax.Array]):
  """Where the n-step returns of windows ``[B, L, ...]`` bootstrap:
  ``episode [B, L]`` (episode index relative to step 0), ``same [B, K+1,
  n+1]`` (step t+k+i is in the episode of t+k) and ``boot_i [B, K+1]``
  (the return of t+k bootstraps at t+k+boot_i)."""
  K = unroll_steps(config)
  n = td_steps(config, env)
  done = window["done"].astype(jnp.int32)                      # [B, L]
  # Episode index of each step relative to the first one.
  episode = jnp.concatenate(
      [jnp.zeros_like(done[:, :1]), jnp.cumsum(done, axis=1)[:, :-1]], axis=1)
  k = jnp.arange(K + 1)
  i = jnp.arange(n + 1)
  idx = k[:, None] + i[None, :]                                # [K+1, n+1]
  same = episode[:, idx] == episode[:, k][:, :, None]          # [B, K+1, n+1]
  # Bootstrap at i = the first random exploration move after t+k (if any
  # before n): the return from there on does not follow the agent's policy.
  explored = window.get("explored")
  if explored is None:
    explored = jnp.zeros_like(window["done"])
  cut = explored[:, idx] & same & (i[None, None, :] > 0)       # [B, K+1, n+1]
  cut = cut.at[..., n].set(True)
  boot_i = jnp.argmax(cut, axis=-1)                            # [B, K+1]
  return episode, same, boot_i


def can_bootstrap(config: Config, env) -> bool:
  """Whether any value target can bootstrap from a search value (static).
  Not when ``n`` >= the game's longest episode and no move is marked as
  exploration: then step t+k+n is always in a later episode than t+k."""
  longest = env.max_episode_steps
  explores = config.random_move_prob > 0 or config.random_opening_plies > 0
  return explores or longest is None or td_steps(config, env) < longest


def bootstrap_index(config: Config, env,
                    window: Dict[str, jax.Array]) -> jax.Array:
  """``[B, K+1]``: the window offset ``k + boot_i`` at which the value
  target of unroll step k bootstraps (see :func:`compute_targets`)."""
  K = unroll_steps(config)
  return jnp.arange(K + 1)[None, :] + _bootstrap(config, env, window)[2]


def compute_targets(config: Config, env, window: Dict[str, jax.Array],
                    boot_value=None):
  """Targets for unroll steps k = 0..K of windows ``[B, L, ...]``.

  Returns dict of ``value [B, K+1]``, ``reward [B, K+1]`` (entry 0 unused),
  ``policy [B, K+1, A]``, ``alive [B, K+1]`` (state t+k is in the episode
  of t) . ``boot_value [B, K+1]``: the values to bootstrap from (default:
  the stored search values at :func:`bootstrap_index`; reanalyse gives
  fresh ones).
  """
  K = unroll_steps(config)
  n = td_steps(config, env)
  d = -1.0 if env.num_players == 2 else config.discount
  k = jnp.arange(K + 1)
  i = jnp.arange(n + 1)
  idx = k[:, None] + i[None, :]                                # [K+1, n+1]
  episode, same, boot_i = _bootstrap(config, env, window)
  before = i[None, None, :] < boot_i[..., None]
  powers = jnp.asarray(np.array([d ** j for j in range(n + 1)], np.float32))
  rewards = window["reward"][:, idx]                           # [B, K+1, n+1]
  reward_part = jnp.sum(jnp.where(same & before, rewards, 0.0) * powers,
                        axis=-1)
  boot_idx = k[None, :] + boot_i                               # [B, K+1]
  boot_same = jnp.take_along_axis(same, boot_i[..., None], -1)[..., 0]
  if boot_value is None:
    boot_value = jnp.take_along_axis(window["value"], boot_idx, axis=1)
  value = reward_part + powers[boot_i] * jnp.where(boot_same, boot_value, 0.0)
  alive = episode[:, :K + 1] == 0                              # [B, K+1]
  value = jnp.where(alive, value, 0.0)
  # Reward of the transition INTO unrolled state k comes from step t+k-1.
  prev_alive = jnp.concatenate([jnp.ones_like(alive[:, :1]), alive[:, :-1]],
                               axis=1)
  reward = jnp.concatenate(
      [jnp.zeros_like(window["reward"][:, :1]), window["reward"][:, :K]],
      axis=1)
  reward = jnp.where(prev_alive, reward, 0.0)
  return dict(value=value, reward=reward,
              policy=window["policy"][:, :K + 1], alive=alive)


def make_loss(config: Config, env, agent: Agent):
  K = unroll_steps(config)
  if config.algo == "stochastic_muzero":
    return stochastic.make_loss(config, K, agent)
  support = agent.support
  nets = agent.nets

  def loss_fn(params, batch):
    """batch: observation [B, ...], actions [B, K], targets (see above)."""
    targets = batch["targets"]
    latent = nets.represent(params, batch["observation"])
    policy_losses, value_losses, reward_losses = [], [], []
    for k in range(K + 1):
      if k > 0:
        latent, reward_logits = nets.dynamics(params, latent,
                                              batch["actions"][:, k - 1])
        latent = _scale_gradient(latent, 0.5)
        reward_losses.append(_cross_entropy(
            support.scalar_to_two_hot(targets["reward"][:, k]),
            reward_logits))
      logits, value_logits = nets.predict(params, latent)
      policy_losses.append(
          _cross_entropy(targets["policy"][:, k], logits)
          * targets["alive"][:, k])
      value_losses.append(_cross_entropy(
          support.scalar_to_two_hot(targets["value"][:, k]), value_logits))
    policy_loss = jnp.mean(jnp.stack(policy_losses, 1))
    value_loss = jnp.mean(jnp.stack(value_losses, 1))
    reward_loss = (jnp.mean(jnp.stack(reward_losses, 1)) if K > 0
                   else jnp.zeros(()))
    loss = (policy_loss + config.value_loss_weight * value_loss
            + reward_loss)
    return loss, dict(loss=loss, policy_loss=policy_loss,
                      value_loss=value_loss, reward_loss=reward_loss)

  return loss_fn


def make_batch(config: Config, env, buffer: replay.ReplayBuffer, key,
               agent: Agent = None, params=None, rows: int = 0):
  """A batch of ``config.batch_size`` windows sampled with ``key``:
  ``observation [B, ...]``, ``actions [B, K]``, ``targets`` (see
  :func:`compute_targets`), for Stochastic MuZero ``next_observations [B,
  K, ...]``.

  ``rows`` > 0 (MuZero Reanalyse, :mod:`agents.reanalyse`): the first
  ``rows`` windows (a uniform sample, like all rows) get fresh policy and
  value targets from one search of ``agent`` with ``params`` (key
  ``reanalyse.search_key(key)``) at their unroll and bootstrap positions;
  the other rows keep the stored targets. The batch then also holds
  ``reanalyse``, the scalar :func:`reanalyse.target_changes`.
  """
  length = window_length(config, env)
  K = unroll_steps(config)
  start, env_idx = replay.sample(buffer, key, config.batch_size, length)
  data = buffer.data
  window = replay.window(buffer, start, env_idx, length, dict(
      reward=data["reward"], done=data["done"], value=data["value"],
      explored=data["explored"]))
  window.update(replay.window(buffer, start, env_idx, K + 1, dict(
      policy=data["policy"], action=data["action"])))
  # Stochastic MuZero's chance encoder also reads o_{t+1..t+K}.
  num_obs = K + 1 if config.algo == "stochastic_muzero" else 1
  obs = replay.window(buffer, start, env_idx, num_obs, data["observation"])
  targets = compute_targets(config, env, window)
  batch = dict(observation=obs[:, 0], actions=window["action"][:, :K],
               targets=targets)
  if rows > 0:
    head = jax.tree.map(lambda x: x[:rows], window)
    fresh = _reanalysed_targets(
        config, env, agent, params, reanalyse.search_key(key), buffer,
        start[:rows], env_idx[:rows], head)
    changes = reanalyse.target_changes(
        jax.tree.map(lambda x: x[:rows], targets), fresh)
    batch["targets"] = jax.tree.map(
        lambda f, t: jnp.concatenate([f.astype(t.dtype), t[rows:]], axis=0),
        fresh, targets)
    batch["reanalyse"] = changes
  if num_obs > 1:
    batch["next_observations"] = obs[:, 1:]
  return batch


def _reanalysed_targets(config: Config, env, agent: Agent, params, key,
                        buffer: replay.ReplayBuffer, start, env_idx, window):
  """Fresh targets ``[R, K+1, ...]`` (as :func:`compute_targets`) for the
  windows ``[R, L, ...]`` at ``start [R]``, ``env_idx [R]``: policy = the
  search's ``action_weights`` at t+k, value bootstrapping from the
  search's root value at :func:`bootstrap_index`; one search call over the
  ``2 R (K+1)`` positions (``R (K+1)`` where nothing can bootstrap)."""
  K = unroll_steps(config)
  boots = can_bootstrap(config, env)
  boot_idx = bootstrap_index(config, env, window)             # [R, K+1]
  offsets = reanalyse.search_offsets(boot_idx, boots)
  data = buffer.data
  found = replay.gather(buffer, start, env_idx, offsets, dict(
      observation=data["observation"], legal=data["legal"]))
  policy, value = reanalyse.fresh_search(
      agent, params, key, found["observation"], found["legal"])
  # Without bootstraps the targets never read boot_value: zeros stand in.
  boot_value = (value[:, K + 1:] if boots
                else jnp.zeros(boot_idx.shape, value.dtype))
  fresh = compute_targets(config, env, window, boot_value=boot_value)
  fresh["policy"] = policy[:, :K + 1]
  return fresh


def _to_shards(tree, axis: int, shards: int):
  """Splits axis ``axis`` (the environment axis) of every leaf into
  ``[shards, n]`` and moves the shard axis to the front."""
  def f(x):
    x = x.reshape(x.shape[:axis] + (shards, x.shape[axis] // shards)
                  + x.shape[axis + 1:])
    return jnp.moveaxis(x, axis, 0)
  return jax.tree.map(f, tree)


def _from_shards(tree, axis: int):
  """The inverse of ``_to_shards``."""
  def f(x):
    x = jnp.moveaxis(x, 0, axis)
    return x.reshape(x.shape[:axis] + (x.shape[axis] * x.shape[axis + 1],)
                     + x.shape[axis + 2:])
  return jax.tree.map(f, tree)


def make_train_step(config: Config, env, agent: Agent, mesh=None):
  """``train_step(TrainState) -> (TrainState, metrics)``: one iteration
  (self-play, replay, ``updates_per_iter`` updates), to be jitted.

  The environments, the replay buffer and the batch are cut into
  ``config.num_shards`` equal shards (shard ``s``: environments ``s N/S ..
  (s+1) N/S - 1``); every shard plays with its own random key and samples
  its ``batch_size / S`` windows from its own environments, and the loss is
  the mean over all shards. With ``mesh`` (a 1-D mesh of D devices, D
  dividing S), the step is a ``shard_map`` in which every device runs its
  ``S / D`` shards (vmapped) and the gradients and metrics are averaged
  over the mesh (``pmean``): the only cross-device traffic. The result does
  not depend on D (to float rounding).
  """
  selfplay = make_selfplay(agent, config.selfplay_steps)
  optimizer = make_optimizer(config)
  loss_fn = make_loss(config, env, agent)
  length = window_length(config, env)
  shards = config.num_shards
  devices = 1 if mesh is None else mesh.size
  parallel.check_devices(config, devices)
  local = shards // devices
  rows = reanalyse_rows(config)
  shard_config = dataclasses.replace(
      config, num_envs=config.num_envs // shards,
      batch_size=config.batch_size // shards)

  def mean_over_devices(tree):
    """``pmean`` over the mesh, as ONE all-reduce of the flattened tree
    (the CPU backend does not combine the per-leaf ones itself)."""
    if mesh is None:
      return tree
    flat, unflatten = jax.flatten_util.ravel_pytree(tree)
    return unflatten(jax.lax.pmean(flat, parallel.AXIS))

  def local_keys(key):
    """This device's shards' keys, ``[local]`` (one shard: ``key`` itself,
    so that a one-shard run draws what an unsharded one always did)."""
    keys = key[None] if shards == 1 else jax.random.split(key, shards)
    if mesh is None:
      return keys
    first = jax.lax.axis_index(parallel.AXIS) * local
    return jax.lax.dynamic_slice_in_dim(keys, first, local)

  def sample_batch(buffer, key, params):
    """This device's batch, and (reanalyse) the mean over its shards of
    the target changes (else ``{}``)."""
    data = _to_shards(buffer.data, 1, local)          # [local, C, N/S, ...]
    batch = jax.vmap(lambda d, k: make_batch(
        shard_config, env, replay.ReplayBuffer(data=d, count=buffer.count),
        k, agent, params, rows))(data, local_keys(key))
    changes = jax.tree.map(jnp.mean, batch.pop("reanalyse", {}))
    return _from_shards(batch, 0), changes            # [local * B/S, ...]

  def update(carry, key):
    params, opt_state, buffer = carry
    batch, changes = sample_batch(buffer, key, params)
    grads, metrics = jax.grad(loss_fn, has_aux=True)(params, batch)
    if rows:
      metrics.update(changes, reanalyse_fraction=jnp.float32(
          rows * shards / config.batch_size))
    with jax.named_scope("gradient_mean"):
      grads, metrics = mean_over_devices((grads, metrics))
    metrics["grad_norm"] = _global_norm(grads)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    return (params, opt_state, buffer), metrics

  def train_step(ts: TrainState):
    key, sp_key, learn_key = jax.random.split(ts.rng_key, 3)
    with jax.named_scope("selfplay"):
      actor, traj, stats = jax.vmap(selfplay, in_axes=(None, 0, 0))(
          ts.params, _to_shards(ts.actor, 0, local), local_keys(sp_key))
    actor = _from_shards(actor, 0)
    traj = _from_shards(traj, 1)                      # [T, N_local, ...]
    with jax.named_scope("selfplay_stats"):
      stats = jax.tree.map(jnp.sum, stats)
      if mesh is not None:
        stats = jax.lax.psum(stats, parallel.AXIS)
    buffer = replay.add(ts.buffer, traj)
    ready = replay.num_valid_starts(buffer, length) > 0

    def learn(args):
      params, opt_state = args
      (params, opt_state, _), metrics = jax.lax.scan(
          update, (params, opt_state, buffer),
          jax.random.split(learn_key, config.updates_per_iter))
      return params, opt_state, jax.tree.map(jnp.mean, metrics)

    # The losses' names (each algorithm's loss has its own).
    metric_names = tuple(jax.eval_shape(learn, (ts.params, ts.opt_state))[2])

    def skip(args):
      params, opt_state = args
      return params, opt_state, {m: jnp.float32(jnp.nan)
                                 for m in metric_names}

    params, opt_state, metrics = jax.lax.cond(
        ready, learn, skip, (ts.params, ts.opt_state))
    metrics = dict(metrics)
    metrics.update(stats)
    metrics["learning"] = ready
    # Never keep poison: the loop stops on a non-finite loss, gradient or
    # parameter (a skipped update's NaN metrics do not count).
    finite = [jnp.isfinite(metrics[m]) | ~ready for m in metric_names]
    finite += [jnp.all(jnp.isfinite(p))
               for p in jax.tree_util.tree_leaves(params)]
    metrics["finite"] = jnp.all(jnp.stack(finite))
    new = TrainState(params=params, opt_state=opt_state, buffer=buffer,
                     actor=actor, rng_key=key, iteration=ts.iteration + 1)
    return new, metrics

  if mesh is None:
    return train_step
  specs = parallel.state_specs(_abstract_state(config, env, agent))
  # check_vma=False: the search's loops start from constants that become
  # per-device values; the replicated outputs are replicated by
  # construction (pmean-ed gradients applied to replicated parameters).
  return jax.shard_map(train_step, mesh=mesh, in_specs=(specs,),
                       out_specs=(specs, parallel.P()), check_vma=False)


def _abstract_state(config: Config, env, agent: Agent) -> TrainState:
  return jax.eval_shape(lambda: init_train_state(config, env, agent))


@functools.lru_cache(maxsize=16)
def jitted_train_step(config: Config, mesh=None):
  """``jax.jit(make_train_step(...))`` for ``config`` (and ``mesh``, see
  :func:`make_train_step`), built once per config (so that several runs with
  one config in a process compile once)."""
  import envs  # pylint: disable=g-import-not-at-top
  env = envs.make(config.env)
  agent = make_agent(config, env)
  step = make_train_step(config, env, agent, mesh)
  if mesh is None:
    return jax.jit(step)
  shardings = parallel.state_shardings(_abstract_state(config, env, agent),
                                       mesh)
  return jax.jit(step, in_shardings=(shardings,),
                 out_shardings=(shardings, parallel.replicated(mesh)))


def state_shardings(config: Config, mesh):
  """The ``NamedSharding``s of a TrainState of ``config`` over ``mesh``."""
  import envs  # pylint: disable=g-import-not-at-top
  env = envs.make(config.env)
  return parallel.state_shardings(
      _abstract_state(config, env, make_agent(config, env)), mesh)


def sharded_init_state(config: Config, mesh) -> TrainState:
  """``init_train_state`` laid out over ``mesh`` as
  ``parallel.state_shardings`` says (each process creates only its own
  shards)."""
  import envs  # pylint: disable=g-import-not-at-top
  parallel.check_devices(config, mesh.size)
  env = envs.make(config.env)
  agent = make_agent(config, env)
  return jax.jit(lambda: init_train_state(config, env, agent),
                 out_shardings=state_shardings(config, mesh))()
