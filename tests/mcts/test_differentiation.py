"""Derivatives of a search's outputs with respect to the model's parameters:
reverse mode (`jax.grad`) against central finite differences and against
forward mode (`jax.jvp`), in float64, with the visit counts fixed."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mcts
from mcts.lowering import platforms

BATCH, ACTIONS, SIMULATIONS = 2, 3, 10


def _recurrent_fn(params, rng_key, action, embedding):
  """A smooth model: every output a smooth function of `params`."""
  del rng_key
  hidden = jnp.tanh(embedding @ params["w"] + params["b"][action])
  out = mcts.RecurrentFnOutput(
      reward=jnp.sin(hidden[:, 0]),
      discount=jnp.full(action.shape, 0.9, hidden.dtype),
      prior_logits=hidden @ params["p"], value=jnp.cos(hidden[:, 1]))
  return out, hidden


def _params_and_embedding():
  keys = jax.random.split(jax.random.PRNGKey(0), 4)
  params = {"w": 0.5 * jax.random.normal(keys[0], (4, 4), jnp.float64),
            "b": jax.random.normal(keys[1], (ACTIONS, 4), jnp.float64),
            "p": jax.random.normal(keys[2], (4, ACTIONS), jnp.float64)}
  return params, jax.random.normal(keys[3], (BATCH, 4), jnp.float64)


def _outputs(params, embedding, policy):
  """The differentiable outputs (root value, root Q-values, and the policy's
  action weights for Gumbel), and the root visit counts."""
  root = mcts.RootFnOutput(prior_logits=embedding @ params["p"],
                           value=jnp.sin(embedding[:, 0]),
                           embedding=embedding)
  out = getattr(mcts, policy)(params, jax.random.PRNGKey(5), root,
                              _recurrent_fn, SIMULATIONS)
  summary = out.search_tree.summary()
  smooth = {"value": summary.value, "qvalues": summary.qvalues}
  if policy == "gumbel_muzero_policy":
    smooth["action_weights"] = out.action_weights
  return smooth, out.search_tree.node_visits


@pytest.mark.parametrize("policy,platform", [
    pytest.param("muzero_policy", None, marks=pytest.mark.slow),
    ("gumbel_muzero_policy", None),
    pytest.param("gumbel_muzero_policy", "default", marks=pytest.mark.slow)])
def test_grad_matches_finite_differences_and_jvp(policy, platform):
  # d/de of a random weighting of the outputs at params + e * direction.
  with jax.enable_x64(True):
    params, embedding = _params_and_embedding()
    direction = jax.tree.map(
        lambda x: jax.random.normal(jax.random.PRNGKey(x.size), x.shape,
                                    x.dtype), params)

    def along(eps):
      """A random weighting of the outputs at params + eps * direction, and
      the visit counts."""
      moved = jax.tree.map(lambda p, d: p + eps * d, params, direction)
      smooth, visits = _outputs(moved, embedding, policy)
      flat = jnp.concatenate([x.ravel() for x in jax.tree.leaves(smooth)])
      weights = jax.random.normal(jax.random.PRNGKey(1), flat.shape,
                                  flat.dtype)
      return flat @ weights, visits

    eps = 1e-6
    run = jax.jit(lambda: (
        jax.grad(lambda e: along(e)[0])(0.0),
        jax.jvp(lambda e: along(e)[0], (0.0,), (1.0,))[1],
        along(eps), along(-eps), along(0.0)))
    if platform is None:
      grad, jvp, plus, minus, at = jax.device_get(run())
    else:
      jax.clear_caches()
      with platforms.forced_platform(platform):
        grad, jvp, plus, minus, at = jax.device_get(run())
      jax.clear_caches()
  # The perturbation changes no choice of the search.
  np.testing.assert_array_equal(plus[1], at[1])
  np.testing.assert_array_equal(minus[1], at[1])
  finite = (plus[0] - minus[0]) / (2 * eps)
  assert abs(finite) > 1e-2  # The outputs depend on the params.
  np.testing.assert_allclose(grad, finite, rtol=1e-6)
  np.testing.assert_allclose(jvp, grad, rtol=1e-10)
