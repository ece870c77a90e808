"""The roots' noise: exact Gamma draws for the Dirichlet noise (against
their CDF), Dirichlet marginals, how `muzero_policy` mixes the noise in,
and no noise drawn when it is switched off."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special
from scipy import stats

import mcts
from mcts import dirichlet


def ks_distance(samples, cdf):
  """Kolmogorov-Smirnov distance between `samples` and `cdf`."""
  samples = np.sort(np.asarray(samples, np.float64))
  n = len(samples)
  values = cdf(samples)
  return max(np.max(np.arange(1, n + 1) / n - values),
             np.max(values - np.arange(n) / n))


# n = 50000 draws: a correct sampler stays under 0.01 with probability
# 1 - 1e-4 (the keys are fixed, so the test is deterministic); one that
# skips the boost, the acceptance test or the redraws is off by 0.05-0.5.
@pytest.mark.parametrize("alpha", [0.03, 0.3, 1.0, 2.5])
@pytest.mark.parametrize("candidates", [1, 2])
def test_log_gamma_matches_the_gamma_cdf(alpha, candidates):
  """P(log G <= t) = P(alpha, e^t), the regularised incomplete gamma; with
  one candidate 2% of the elements need a second round."""
  log_g = dirichlet.log_gamma(jax.random.PRNGKey(11), alpha, (50000,),
                              candidates=candidates)
  assert np.all(np.isfinite(log_g))
  assert ks_distance(log_g, lambda t: special.gammainc(alpha, np.exp(t))
                     ) < 0.01


def test_dirichlet_rows_and_marginals():
  num_actions = 16
  noise = np.asarray(dirichlet.dirichlet(jax.random.PRNGKey(2), 0.3,
                                         (50000, num_actions)))
  assert np.all(noise >= 0)
  np.testing.assert_allclose(noise.sum(axis=-1), 1, atol=1e-5)
  # A marginal of Dir(a, ..., a) is Beta(a, (A - 1) a).
  marginal = stats.beta(0.3, 0.3 * (num_actions - 1))
  for action in (0, 7, 15):
    assert ks_distance(noise[:, action], marginal.cdf) < 0.01


def test_dirichlet_with_small_alpha_stays_finite():
  """alpha = 0.03 (AlphaZero's Go noise): most Gamma draws underflow float32,
  their logarithms do not."""
  noise = np.asarray(dirichlet.dirichlet(jax.random.PRNGKey(0), 0.03,
                                         (256, 362)))
  assert np.all(np.isfinite(noise))
  np.testing.assert_allclose(noise.sum(axis=-1), 1, atol=1e-5)
  # Most of the mass on a few actions.
  assert np.median(np.sort(noise, axis=-1)[:, -5:].sum(axis=-1)) > 0.5


def test_dirichlet_key_and_vmap():
  draw = jax.jit(lambda key: dirichlet.dirichlet(key, 0.3, (4, 10)))
  key = jax.random.PRNGKey(5)
  first = np.asarray(draw(key))
  np.testing.assert_array_equal(first, draw(key))
  assert not np.allclose(first, draw(jax.random.PRNGKey(6)))
  keys = jax.random.split(key, 3)
  mapped = jax.vmap(draw)(keys)
  for i in range(3):
    # Batched and single draws fuse differently: the last bits may differ.
    np.testing.assert_allclose(mapped[i], draw(keys[i]), rtol=1e-5)


def toy_model(num_actions):
  def recurrent_fn(params, rng_key, action, embedding):
    del params, rng_key
    batch_size = action.shape[0]
    return mcts.RecurrentFnOutput(
        reward=jnp.zeros(batch_size), discount=jnp.ones(batch_size),
        prior_logits=jnp.zeros((batch_size, num_actions)),
        value=jnp.zeros(batch_size)), embedding
  return recurrent_fn


def test_muzero_policy_mixes_the_noise_into_the_root_prior():
  """The root prior a search starts from: (1 - f) softmax(logits) + f Dir,
  the noise drawn with the key's second split (mctx's order), illegal
  actions masked."""
  batch_size, num_actions = 3, 6
  logits = jnp.asarray(np.random.default_rng(0).normal(
      size=(batch_size, num_actions)), jnp.float32)
  root = mcts.RootFnOutput(prior_logits=logits, value=jnp.zeros(batch_size),
                           embedding=jnp.zeros(batch_size))
  invalid = jnp.zeros((batch_size, num_actions)).at[:, 2].set(1)
  key = jax.random.PRNGKey(4)
  out = jax.jit(lambda key: mcts.muzero_policy(
      (), key, root, toy_model(num_actions), num_simulations=4,
      invalid_actions=invalid, dirichlet_fraction=0.4,
      dirichlet_alpha=0.5))(key)
  noise = jax.jit(lambda key: dirichlet.dirichlet(
      jax.random.split(key, 3)[1], 0.5, (batch_size, num_actions)))(key)
  expected = 0.6 * jax.nn.softmax(logits) + 0.4 * noise
  expected = jnp.where(invalid > 0, 0, expected)
  expected = expected / expected.sum(axis=-1, keepdims=True)
  prior = jnp.exp(out.search_tree.children_prior_logits[:, 0])
  np.testing.assert_allclose(prior, expected, rtol=1e-5, atol=1e-6)


def test_no_noise_drawn_with_a_zero_fraction():
  """f = 0 gives the model's prior exactly, and so does a traced 0."""
  batch_size, num_actions = 2, 5
  logits = jnp.log(jnp.asarray([[0.1, 0.2, 0.3, 0.2, 0.2],
                                [0.5, 0.1, 0.1, 0.2, 0.1]]))
  root = mcts.RootFnOutput(prior_logits=logits, value=jnp.zeros(batch_size),
                           embedding=jnp.zeros(batch_size))

  def prior(fraction):
    out = mcts.muzero_policy((), jax.random.PRNGKey(0), root,
                             toy_model(num_actions), num_simulations=2,
                             dirichlet_fraction=fraction)
    return jnp.exp(out.search_tree.children_prior_logits[:, 0])

  without = jax.jit(lambda: prior(0))()
  np.testing.assert_allclose(without, jnp.exp(logits), rtol=1e-6)
  np.testing.assert_allclose(jax.jit(prior)(jnp.float32(0)), without,
                             rtol=1e-6)


@pytest.mark.parametrize("alpha", [0, -0.3])
def test_a_bad_alpha_is_named(alpha):
  root = mcts.RootFnOutput(prior_logits=jnp.zeros((1, 3)),
                           value=jnp.zeros(1), embedding=jnp.zeros(1))
  with pytest.raises(ValueError, match="dirichlet_alpha"):
    mcts.muzero_policy((), jax.random.PRNGKey(0), root, toy_model(3),
                       num_simulations=2, dirichlet_alpha=alpha)


def test_gumbel_policy_with_a_zero_scale_draws_no_noise():
  """A Python 0 skips the Gumbel draw; the search is the same as with a
  traced 0 scale (noise drawn, then multiplied by 0)."""
  batch_size, num_actions = 2, 40
  logits = jnp.asarray(np.random.default_rng(1).normal(
      size=(batch_size, num_actions)), jnp.float32)
  root = mcts.RootFnOutput(prior_logits=logits, value=jnp.zeros(batch_size),
                           embedding=jnp.zeros(batch_size))

  def search(scale):
    out = mcts.gumbel_muzero_policy((), jax.random.PRNGKey(0), root,
                                    toy_model(num_actions),
                                    num_simulations=12, gumbel_scale=scale)
    return out.action, out.search_tree.children_visits[:, 0]

  skipped = jax.jit(lambda: search(0))()
  traced = jax.jit(search)(jnp.float32(0))
  for a, b in zip(skipped, traced):
    np.testing.assert_array_equal(a, b)
  # Fewer threefry calls: the key split remains, the draw is gone.
  threefry_calls = lambda lowered: lowered.as_text().count("threefry")
  assert threefry_calls(jax.jit(lambda: search(0)).lower()) < threefry_calls(
      jax.jit(search).lower(jnp.float32(0)))


def test_bfloat16_noise_is_drawn_in_float32():
  noise = jax.jit(lambda key: dirichlet.dirichlet(
      key, 0.3, (8, 50), jnp.bfloat16))(jax.random.PRNGKey(0))
  assert noise.dtype == jnp.bfloat16
  reference = jax.jit(lambda key: dirichlet.dirichlet(
      key, 0.3, (8, 50)))(jax.random.PRNGKey(0))
  np.testing.assert_allclose(np.asarray(noise, np.float32), reference,
                             rtol=1e-2, atol=1e-3)
