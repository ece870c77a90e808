"""Sampled-action search on a 1-D continuous control task (envs.point_mass).

The search uses the true dynamics as its model and K uniform proposals per
node (Sampled MuZero, Hubert et al. 2021); compare the return of acting
with the search against acting with the proposals alone:

  python -m examples.point_mass_sampled
"""
import functools

import jax
import jax.numpy as jnp

import mcts
from envs.point_mass import PointMass

NUM_SAMPLES, NUM_SIMULATIONS, BATCH = 16, 32, 64


def make_recurrent_fn(env, num_samples=NUM_SAMPLES):
  """The true dynamics as the model, with `num_samples` uniform proposals
  in [-1, 1] at every new node."""
  def recurrent_fn(params, rng_key, action, state):
    del params
    new = jax.vmap(env.step)(state, action)
    batch = action.shape[0]
    out = mcts.SampledRecurrentFnOutput(
        reward=new.reward, discount=1.0 - new.terminated.astype(jnp.float32),
        value=jnp.zeros(batch),
        sampled_actions=jax.random.uniform(rng_key, (batch, num_samples, 1),
                                           minval=-1.0, maxval=1.0),
        prior_logits=jnp.zeros((batch, num_samples)))
    return out, new
  return recurrent_fn


def mean_return(env, key, use_search, *, batch=BATCH,
                num_samples=NUM_SAMPLES, num_simulations=NUM_SIMULATIONS):
  """The mean return of `batch` episodes acting, at every step, with the
  sampled search (`use_search`) or with the first of its uniform
  proposals."""
  recurrent_fn = make_recurrent_fn(env, num_samples)
  state = jax.vmap(env.init)(jax.random.split(key, batch))

  def act(carry, key):
    state, total = carry
    samples = jax.random.uniform(key, (batch, num_samples, 1),
                                 minval=-1.0, maxval=1.0)
    root = mcts.SampledRootFnOutput(
        sampled_actions=samples, prior_logits=jnp.zeros(samples.shape[:2]),
        value=jnp.zeros(batch), embedding=state)
    out = mcts.sampled_muzero_policy((), key, root, recurrent_fn,
                                     num_simulations, gumbel_scale=0.0)
    action = jnp.where(use_search, out.action, samples[:, 0])
    state = jax.vmap(env.step)(state, action)
    return (state, total + state.reward), None

  (_, total), _ = jax.lax.scan(act, (state, jnp.zeros(batch)),
                               jax.random.split(key, env.horizon))
  return jnp.mean(total)


def main():
  env = PointMass()
  episode_return = jax.jit(functools.partial(mean_return, env))
  key = jax.random.PRNGKey(0)
  print(f"mean return, acting with random proposals: "
        f"{float(episode_return(key, False)):.3f}")
  print(f"mean return, acting with the sampled search ({NUM_SAMPLES} "
        f"samples, {NUM_SIMULATIONS} simulations): "
        f"{float(episode_return(key, True)):.3f}")


if __name__ == "__main__":
  main()
