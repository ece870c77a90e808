"""`check_finite=True`: a NaN or inf from the model, caught under `jit` by
`jax.experimental.checkify`, named by field and simulation."""
import functools

import jax
from jax.experimental import checkify
import jax.numpy as jnp
import numpy as np
import pytest

import mcts
from mcts import checks

B, SIMS = 3, 8
POLICIES = ["muzero_policy", "gumbel_muzero_policy"]


def _chain_fn(field):
  """One action: simulation `s` expands the node at depth `s + 1` (the
  embedding). `field` is NaN there for `s == params["k"]`, batch index 1."""
  def recurrent_fn(params, rng_key, action, depth):
    del rng_key, action
    depth = depth + 1
    bad = (depth == params["k"] + 1) & (jnp.arange(B) == 1)
    out = dict(reward=jnp.ones(B), discount=jnp.ones(B),
               prior_logits=jnp.zeros((B, 1)), value=jnp.zeros(B))
    out[field] = jnp.where(bad.reshape((B,) + (1,) * (out[field].ndim - 1)),
                           jnp.nan, out[field])
    return mcts.RecurrentFnOutput(**out), depth
  return recurrent_fn


def _root(value=0.0):
  return mcts.RootFnOutput(prior_logits=jnp.zeros((B, 1)),
                           value=jnp.full((B,), value),
                           embedding=jnp.zeros(B, jnp.int32))


def _checked(policy, field, root=None):
  """The jitted, checkified policy: `params -> (error, output)`."""
  def run(params):
    return getattr(mcts, policy)(
        params, jax.random.PRNGKey(0), root or _root(), _chain_fn(field),
        SIMS, check_finite=True)
  return jax.jit(checkify.checkify(run, errors=checkify.user_checks))


@pytest.mark.parametrize("policy,field", [
    ("muzero_policy", "value"), ("gumbel_muzero_policy", "value"),
    pytest.param("gumbel_muzero_policy", "reward", marks=pytest.mark.slow),
    pytest.param("muzero_policy", "prior_logits", marks=pytest.mark.slow)])
def test_nan_at_simulation_k_is_reported_under_jit(policy, field):
  err, out = _checked(policy, field)({"k": jnp.int32(5)})
  with pytest.raises(checkify.JaxRuntimeError,
                     match=rf"recurrent_fn returned a non-finite {field} at "
                     r"simulation 5 \(batch index 1\)"):
    err.throw()
  assert out.action_weights.shape == (B, 1)


@pytest.mark.slow
@pytest.mark.parametrize("policy", POLICIES)
def test_no_error_when_finite_and_under_lax_map(policy):
  """Several problems, mapped over by `lax.map` (checkify does not compose
  with `vmap` of a `while_loop` in JAX 0.10: docs/debugging.md)."""
  checked = _checked(policy, "discount")
  err, _ = checked({"k": jnp.int32(-1)})  # Never NaN.
  assert err.get() is None
  # Two problems; only the second has a NaN (at simulation 3).
  err, out = jax.jit(lambda params: jax.lax.map(checked, params))(
      {"k": jnp.array([-1, 3])})
  assert out.action.shape == (2, B)
  assert "at mapped index 1: recurrent_fn returned a non-finite discount " \
      "at simulation 3" in err.get()


def test_root_is_checked():
  err, _ = _checked("muzero_policy", "value", _root(jnp.inf))(
      {"k": jnp.int32(-1)})
  with pytest.raises(checkify.JaxRuntimeError,
                     match=r"root.value is not finite \(batch index 0\)"):
    err.throw()


def test_minus_inf_prior_logits_are_allowed():
  """-inf marks an illegal action; NaN and +inf do not."""
  def check(logits):
    out = mcts.RecurrentFnOutput(reward=jnp.zeros(2), discount=jnp.ones(2),
                                 prior_logits=logits, value=jnp.zeros(2))
    checks.check_finite_outputs(out, jnp.int32(4))
  check = jax.jit(checkify.checkify(check, errors=checkify.user_checks))
  assert check(jnp.array([[0.0, -jnp.inf], [1.0, 2.0]]))[0].get() is None
  for bad in (jnp.nan, jnp.inf):
    err, _ = check(jnp.array([[0.0, 1.0], [bad, 2.0]]))
    assert "non-finite prior_logits at simulation 4 (batch index 1)" in (
        err.get())


@pytest.mark.slow
def test_stochastic_policy():
  """A NaN chance value at simulation 3 (the depth-2 decision node)."""
  def decision_fn(params, rng_key, action, state):
    del params, rng_key, action
    return mcts.DecisionRecurrentFnOutput(
        chance_logits=jnp.zeros((B, 1)), afterstate_value=jnp.zeros(B)), state

  def chance_fn(params, rng_key, outcome, state):
    del params, rng_key, outcome
    state = state + 1
    return mcts.ChanceRecurrentFnOutput(
        action_logits=jnp.zeros((B, 1)),
        value=jnp.where(state == 2, jnp.nan, 0.0), reward=jnp.zeros(B),
        discount=jnp.ones(B)), state

  run = jax.jit(checkify.checkify(functools.partial(
      mcts.stochastic_muzero_policy, (), jax.random.PRNGKey(0),
      decision_recurrent_fn=decision_fn, chance_recurrent_fn=chance_fn,
      num_simulations=SIMS, check_finite=True), errors=checkify.user_checks))
  err, _ = run(_root())
  assert "non-finite value at simulation 3 (batch index 0)" in err.get()


@pytest.mark.parametrize("policy", POLICIES)
def test_default_program_has_no_check(policy):
  """Off by default: the lowered program has no finiteness test at all
  (and with checks, an unwrapped search fails to lower)."""
  def lowered(**kwargs):
    fn = lambda params: getattr(mcts, policy)(
        params, jax.random.PRNGKey(0), _root(), _chain_fn("value"), SIMS,
        **kwargs)
    return fn
  params = {"k": jnp.int32(-1)}
  default = jax.jit(lowered()).lower(params).as_text()
  assert "is_finite" not in default
  checked = jax.jit(checkify.checkify(
      lowered(check_finite=True), errors=checkify.user_checks))
  assert "is_finite" in checked.lower(params).as_text()
  np.testing.assert_equal(default, jax.jit(lowered(
      check_finite=False)).lower(params).as_text())
