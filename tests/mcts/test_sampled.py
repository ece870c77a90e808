"""Search over sampled (continuous) actions."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mcts
from envs.point_mass import PointMass
from examples import point_mass_sampled

K = 16


def _bandit_fn(target):
  """One step: reward -(u - target)^2, then the episode ends (discount 0)."""
  def recurrent_fn(params, rng_key, action, embedding):
    del params, rng_key
    batch = action.shape[0]
    out = mcts.SampledRecurrentFnOutput(
        reward=-(action[:, 0] - target) ** 2, discount=jnp.zeros(batch),
        value=jnp.zeros(batch),
        sampled_actions=jnp.zeros((batch, K, 1)),
        prior_logits=jnp.zeros((batch, K)))
    return out, embedding
  return recurrent_fn


@pytest.mark.parametrize("policy", ["gumbel", "muzero"])
def test_sampled_search_on_a_one_step_bandit(policy):
  """Gumbel finds the best sampled arm; pUCT keeps exact statistics."""
  batch, target = 3, 0.3
  samples = jax.random.uniform(jax.random.PRNGKey(0), (batch, K, 1),
                               minval=-1.0, maxval=1.0)
  root = mcts.SampledRootFnOutput(sampled_actions=samples,
                                  prior_logits=jnp.zeros((batch, K)),
                                  value=jnp.zeros(batch),
                                  embedding=jnp.zeros(batch))
  kwargs = (dict(gumbel_scale=0.0) if policy == "gumbel" else
            dict(dirichlet_fraction=0.0, temperature=0.0))
  out = jax.jit(functools.partial(
      mcts.sampled_muzero_policy, recurrent_fn=_bandit_fn(target),
      num_simulations=64 if policy == "gumbel" else 256, policy=policy,
      **kwargs))((), jax.random.PRNGKey(1),
                                                    root)
  rewards = -(np.asarray(samples[..., 0]) - target) ** 2
  best = np.argmax(rewards, axis=1)
  np.testing.assert_allclose(out.action,
                             samples[np.arange(batch), out.action_index])
  assert out.action_weights.shape == (batch, K)
  if policy == "gumbel":
    # Sequential halving with exact Q-values finds the best arm itself.
    np.testing.assert_array_equal(out.action_index, best)
    np.testing.assert_array_equal(np.argmax(out.action_weights, -1), best)
  else:
    # pUCT has no such guarantee here: unvisited arms get the lowest Q, so
    # the arm its tie-breaks try first tends to keep the visits (over 16
    # keys its pick's regret ranged from 0 to 1.38 of a 1.56 range). Its
    # statistics are exact: Q(a) = r(a) for every visited arm (discount 0),
    # and it acts with its most visited arm (temperature 0).
    tree = out.search_tree
    visits = np.asarray(tree.summary().visit_counts)
    visited = visits > 0
    np.testing.assert_allclose(np.asarray(tree.summary().qvalues)[visited],
                               rewards[visited], rtol=1e-6)
    np.testing.assert_array_equal(visits.sum(1), 256)
    np.testing.assert_array_equal(out.action_index, np.argmax(visits, 1))


def test_sampled_search_controls_the_point_mass():
  """Acting with the search beats acting with its random proposals."""
  episode_return = jax.jit(functools.partial(
      point_mass_sampled.mean_return, PointMass(horizon=12), batch=16,
      num_samples=K, num_simulations=32))
  key = jax.random.PRNGKey(0)
  searched = float(episode_return(key, True))
  random = float(episode_return(key, False))
  assert searched > random + 0.5, (searched, random)


def test_sampled_actions_shape_is_checked():
  root = mcts.SampledRootFnOutput(sampled_actions=jnp.zeros((2, K + 1, 1)),
                                  prior_logits=jnp.zeros((2, K)),
                                  value=jnp.zeros(2), embedding=jnp.zeros(2))
  with pytest.raises(ValueError, match=r"root.sampled_actions must have "
                     r"shape \[B, K, ...\]"):
    mcts.sampled_muzero_policy((), jax.random.PRNGKey(0), root,
                               _bandit_fn(0.0), num_simulations=4)
