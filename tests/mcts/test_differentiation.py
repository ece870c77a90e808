"""Derivatives of a search's outputs with respect to the model's parameters:
reverse mode (`jax.grad`) against central finite differences and against
forward mode (`jax.jvp`), in float32 (the default dtype) and float64, with
the visit counts fixed, for `search` and both policies; with each walk:
the default, the walk kernel (Pallas' interpreter), and the default once a
GPU has measured the kernel (its `cuda` branch then traced on the CPU too).
"""
import functools
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mcts
from mcts import rules
from mcts.lowering import platforms
from mcts.lowering import walks

BATCH, ACTIONS, SIMULATIONS = 2, 3, 10

# Central differences: step and relative tolerance per dtype. In float32 an
# output of size ~10 is rounded by ~1e-6, i.e. ~2e-4 of a difference over
# 2 * 3e-3; the truncation error is ~eps**2 = 1e-5 of the derivative
# (measured: 5e-5 off). A wrong derivative (a missing term, a factor) is
# off by far more. A larger step changes the search's choices here.
STEPS = {jnp.float32: (3e-3, 1e-3), jnp.float64: (1e-6, 1e-6)}


def _recurrent_fn(params, rng_key, action, embedding):
  """A smooth model: every output a smooth function of `params`."""
  del rng_key
  hidden = jnp.tanh(embedding @ params["w"] + params["b"][action])
  out = mcts.RecurrentFnOutput(
      reward=jnp.sin(hidden[:, 0]),
      discount=jnp.full(action.shape, 0.9, hidden.dtype),
      prior_logits=hidden @ params["p"], value=jnp.cos(hidden[:, 1]))
  return out, hidden


def _params_and_embedding(dtype):
  keys = jax.random.split(jax.random.PRNGKey(3), 4)
  params = {"w": 0.5 * jax.random.normal(keys[0], (4, 4), dtype),
            "b": jax.random.normal(keys[1], (ACTIONS, 4), dtype),
            "p": jax.random.normal(keys[2], (4, ACTIONS), dtype)}
  return params, jax.random.normal(keys[3], (BATCH, 4), dtype)


def _search(params, rng_key, root, recurrent_fn, num_simulations):
  """`mcts.search` with mctx-style selection functions of the user's."""
  tree = mcts.search(
      params, rng_key, root=root, recurrent_fn=recurrent_fn,
      root_action_selection_fn=functools.partial(
          mcts.muzero_action_selection, depth=0),
      interior_action_selection_fn=mcts.muzero_action_selection,
      num_simulations=num_simulations)
  return mcts.PolicyOutput(action=None, action_weights=None,
                           search_tree=tree)


def _outputs(params, embedding, policy):
  """The differentiable outputs (root value, root Q-values, and the policy's
  action weights for Gumbel), and the root visit counts."""
  root = mcts.RootFnOutput(prior_logits=embedding @ params["p"],
                           value=jnp.sin(embedding[:, 0]),
                           embedding=embedding)
  run = _search if policy == "search" else getattr(mcts, policy)
  out = run(params, jax.random.PRNGKey(5), root, _recurrent_fn, SIMULATIONS)
  summary = out.search_tree.summary()
  smooth = {"value": summary.value, "qvalues": summary.qvalues}
  if policy == "gumbel_muzero_policy":
    smooth["action_weights"] = out.action_weights
  return smooth, out.search_tree.node_visits


def assert_grad_matches_finite_differences(fn, params, dtype):
  """`fn(params) -> (scalar, visits)`: `jax.grad` of the scalar along a
  random direction matches central differences (with the visits the same
  at both ends) and `jax.jvp`."""
  eps, rtol = STEPS[dtype]
  direction = jax.tree.map(
      lambda x: jax.random.normal(jax.random.PRNGKey(x.size), x.shape,
                                  x.dtype), params)

  def along(e):
    return fn(jax.tree.map(lambda p, d: p + e * d, params, direction))

  zero = jnp.zeros((), dtype)
  grad, jvp, plus, minus, at = jax.device_get(jax.jit(lambda: (
      jax.grad(lambda e: along(e)[0])(zero),
      jax.jvp(lambda e: along(e)[0], (zero,), (jnp.ones((), dtype),))[1],
      along(zero + eps), along(zero - eps), along(zero)))())
  # The perturbation changes no choice of the search.
  np.testing.assert_array_equal(plus[1], at[1])
  np.testing.assert_array_equal(minus[1], at[1])
  finite = (plus[0] - minus[0]) / (2 * eps)
  assert abs(finite) > 1e-2  # The outputs depend on the params.
  np.testing.assert_allclose(grad, finite, rtol=rtol)
  np.testing.assert_allclose(jvp, grad, rtol=10 * jnp.finfo(dtype).eps)


def _weighted_outputs(policy):
  """params -> (a random weighting of the outputs, the visit counts)."""
  def fn(params_and_embedding):
    params, embedding = params_and_embedding
    smooth, visits = _outputs(params, embedding, policy)
    flat = jnp.concatenate([x.ravel() for x in jax.tree.leaves(smooth)])
    weights = jax.random.normal(jax.random.PRNGKey(1), flat.shape,
                                flat.dtype)
    return flat @ weights, visits
  return fn


def _check(policy, dtype):
  params = _params_and_embedding(dtype)
  # Only the model's parameters move; the root's embedding stays.
  fn = _weighted_outputs(policy)
  assert_grad_matches_finite_differences(
      lambda p: fn((p, params[1])), params[0], dtype)


@pytest.mark.parametrize("policy,dtype", [
    pytest.param("search", jnp.float32, marks=pytest.mark.slow),
    pytest.param("search", jnp.float64, marks=pytest.mark.slow),
    pytest.param("muzero_policy", jnp.float32, marks=pytest.mark.slow),
    pytest.param("muzero_policy", jnp.float64, marks=pytest.mark.slow),
    ("gumbel_muzero_policy", jnp.float32),
    pytest.param("gumbel_muzero_policy", jnp.float64, marks=pytest.mark.slow)])
def test_grad_matches_finite_differences_and_jvp(policy, dtype):
  with jax.enable_x64(dtype == jnp.float64):
    _check(policy, dtype)


@pytest.mark.slow  # 18 s each; test_grad_once_the_kernel_is_measured and
# test_walk_never_differentiates_the_kernel cover the kernel by default.
@pytest.mark.parametrize("policy", ["muzero_policy", "gumbel_muzero_policy"])
def test_grad_with_the_walk_kernel(policy):
  """The kernel (Pallas' interpreter) walks; the derivatives are those of
  the generic walk's search (float32: the kernel's dtype)."""
  with walks.walk_kernel("always", interpret=True):
    _check(policy, jnp.float32)


@pytest.mark.parametrize("policy", [
    "muzero_policy",
    pytest.param("gumbel_muzero_policy", marks=pytest.mark.slow)])
def test_grad_once_the_kernel_is_measured(policy, monkeypatch):
  """With the kernel on by default on GPUs, a search traces its `cuda`
  branch on every platform: a derivative must not reach it."""
  monkeypatch.setattr(walks, "KERNEL_MEASURED_ON_GPU", True)
  _check(policy, jnp.float32)


@pytest.mark.slow
def test_grad_with_the_accelerator_lowering_forced():
  """The accelerator's walk and backup along the recorded path, forced on
  the CPU (`platforms.forced_platform`)."""
  with jax.enable_x64(True):
    jax.clear_caches()
    with platforms.forced_platform("default"):
      _check("gumbel_muzero_policy", jnp.float64)
    jax.clear_caches()


def test_walk_never_differentiates_the_kernel():
  """`walks.walk` itself given a tree whose values carry tangents: under
  `jax.jvp` the kernel walks as the generic walk, with no error."""
  params, embedding = _params_and_embedding(jnp.float32)
  root = mcts.RootFnOutput(prior_logits=embedding @ params["p"],
                           value=jnp.sin(embedding[:, 0]),
                           embedding=embedding)
  tree = mcts.muzero_policy(params, jax.random.PRNGKey(5), root,
                            _recurrent_fn, SIMULATIONS).search_tree
  fields = ("node_values", "raw_values", "children_qvalues",
            "children_prior_logits")
  values = {f: getattr(tree, f) for f in fields}
  rule = rules.Puct()

  def leaf_edge(values):
    """parent and action `[B]` of the walk on the tree with `values`."""
    parent, action, _, _ = walks.walk(jax.random.PRNGKey(3),
                                      tree.replace(**values), rule, rule,
                                      SIMULATIONS)
    return parent, action

  with walks.walk_kernel("always", interpret=True):
    kernel, _ = jax.jvp(leaf_edge, (values,), (values,))
  with walks.walk_kernel("never"):
    generic = leaf_edge(values)
  for x, y in zip(kernel, generic):
    np.testing.assert_array_equal(x, y)


@pytest.mark.slow
def test_grad_of_the_readme_example():
  """The README's example search, as written (float32, the default walk),
  its model's reward scaled and its root value set by parameters: `jax.grad`
  of the root values and Q-values matches central differences."""
  readme = os.path.join(os.path.dirname(os.path.dirname(
      os.path.dirname(os.path.abspath(__file__)))), "README.md")
  with open(readme) as f:
    example = re.findall(r"```python\n(.*?)```", f.read(), re.S)[0]
  namespace = {}
  exec(compile(example, "README.md", "exec"), namespace)  # pylint: disable=exec-used
  batch, num_actions = namespace["B"], namespace["A"]
  recurrent_fn, root = namespace["recurrent_fn"], namespace["root"]

  def scaled_fn(params, rng_key, action, embedding):
    out, embedding = recurrent_fn((), rng_key, action, embedding)
    return out.replace(reward=params["reward"] * out.reward), embedding

  def fn(params):
    out = mcts.muzero_policy(
        params=params, rng_key=jax.random.PRNGKey(0),
        root=root.replace(value=params["value"]), recurrent_fn=scaled_fn,
        num_simulations=32, invalid_actions=jnp.zeros((batch, num_actions)))
    summary = out.search_tree.summary()
    weights = jax.random.normal(jax.random.PRNGKey(2), summary.qvalues.shape)
    return (summary.value.sum() + (weights * summary.qvalues).sum(),
            out.search_tree.node_visits)

  params = {"reward": jnp.float32(1.0),
            "value": jnp.linspace(-0.5, 0.5, batch, dtype=jnp.float32)}
  assert_grad_matches_finite_differences(fn, params, jnp.float32)
