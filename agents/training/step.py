"""The jitted training iteration: self-play, replay, ``updates_per_iter``
gradient steps, in ONE function, sharded over devices.

The environments, the replay buffer and the batch are cut into
``config.num_shards`` equal shards, each with its own random stream; on a
mesh every device runs its share of them (``shard_map``) and the gradients
are averaged over the mesh, the only cross-device traffic
(:mod:`agents.training.parallel`).
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.flatten_util
import jax.numpy as jnp
import optax

from agents.config import reanalyse_rows, shard_rows
from agents.training import parallel
from agents.training import replay
from agents.training.batch import make_batch
from agents.training.selfplay import make_selfplay, temperature_at
from agents.training.state import (TrainState, abstract_state,
                                   make_optimizer, state_shardings)
from agents.training.targets import window_length


def _global_norm(tree):
  """The global L2 norm of a tree of gradients, ``[]``."""
  tree_api = getattr(optax, "tree", None)
  if tree_api is not None and hasattr(tree_api, "norm"):
    return tree_api.norm(tree)
  return optax.global_norm(tree)


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


def make_train_step(agent, mesh=None):
  """``train_step(TrainState) -> (TrainState, metrics)``: one iteration of
  ``agent``'s run (self-play, replay, ``updates_per_iter`` updates), to be
  jitted.

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
  config, env = agent.config, agent.env
  selfplay = make_selfplay(agent, config.selfplay_steps)
  optimizer = make_optimizer(config)
  loss_fn = agent.make_loss()
  length = window_length(config, env)
  shards = config.num_shards
  devices = 1 if mesh is None else mesh.size
  parallel.check_devices(config, devices)
  local = shards // devices
  rows = reanalyse_rows(config)
  shard_config = dataclasses.replace(
      config, num_envs=config.num_envs // shards,
      batch_size=shard_rows(config))

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
        k, agent, params, rows, agent.reads_next_observations))(
            data, local_keys(key))
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
      actor, traj, stats = jax.vmap(selfplay, in_axes=(None, 0, 0, None))(
          ts.params, _to_shards(ts.actor, 0, local), local_keys(sp_key),
          temperature_at(config, ts.iteration))
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
  specs = parallel.state_specs(abstract_state(agent))
  # check_vma=False: the search's loops start from constants that become
  # per-device values; the replicated outputs are replicated by
  # construction (pmean-ed gradients applied to replicated parameters).
  return jax.shard_map(train_step, mesh=mesh, in_specs=(specs,),
                       out_specs=(specs, parallel.P()), check_vma=False)


@functools.lru_cache(maxsize=16)
def jitted_train_step(agent, mesh=None):
  """``jax.jit(make_train_step(agent, mesh))``, built once per agent (equal
  agents: one config and env), so that several runs of one config in a
  process compile once."""
  step = make_train_step(agent, mesh)
  if mesh is None:
    return jax.jit(step)
  shardings = state_shardings(agent, mesh)
  return jax.jit(step, in_shardings=(shardings,),
                 out_shardings=(shardings, parallel.replicated(mesh)))
