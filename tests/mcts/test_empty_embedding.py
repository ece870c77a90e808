"""Empty embeddings (`()`, `None`, `{}`), as mctx accepts them: bandit
problems whose `recurrent_fn` needs no state."""
import functools

import jax
import jax.numpy as jnp
import mctx
import numpy as np
import pytest

import mcts

B, A, SIMS = 3, 5, 12
EMPTY = [(), None, {}]  # The empty pytrees mctx 0.0.71 accepts.


def _bandit_params():
  """Arm rewards, root and interior prior logits, each `[B, A]` (no ties
  for the selection rules to break)."""
  rewards, logits, inner = jax.random.normal(jax.random.PRNGKey(7),
                                             (3, B, A))
  return dict(reward=rewards, logits=logits, inner_logits=inner)


def _bandit_fn(module):
  """A one-step bandit: reward of the arm, then the episode ends."""
  def recurrent_fn(params, rng_key, action, embedding):
    del rng_key
    out = module.RecurrentFnOutput(
        reward=params["reward"][jnp.arange(B), action],
        discount=jnp.zeros(B), prior_logits=params["inner_logits"],
        value=jnp.zeros(B))
    return out, embedding
  return recurrent_fn


def _root(module, params, embedding):
  return module.RootFnOutput(prior_logits=params["logits"],
                             value=jnp.zeros(B), embedding=embedding)


_POLICY_KWARGS = {"muzero_policy": dict(dirichlet_fraction=0.0),
                  "gumbel_muzero_policy": dict()}


@functools.partial(jax.jit, static_argnames=("module", "policy", "kwargs"))
def _policy(params, embedding=(), *, module, policy, kwargs=()):
  return getattr(module, policy)(
      params, jax.random.PRNGKey(1), _root(module, params, embedding),
      _bandit_fn(module), num_simulations=SIMS,
      **_POLICY_KWARGS[policy], **dict(kwargs))


@pytest.mark.parametrize("policy,embedding", [
    ("muzero_policy", ()), ("gumbel_muzero_policy", None)], ids=repr)
def test_bandit_search_matches_mctx(policy, embedding):
  params = _bandit_params()
  ours = _policy(params, embedding, module=mcts, policy=policy)
  theirs = _policy(params, embedding, module=mctx, policy=policy)
  np.testing.assert_allclose(ours.action_weights, theirs.action_weights,
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(ours.search_tree.children_visits,
                                theirs.search_tree.children_visits)
  exists = theirs.search_tree.node_visits > 0
  np.testing.assert_allclose(ours.search_tree.node_values[exists],
                             theirs.search_tree.node_values[exists],
                             atol=1e-6)
  assert ours.search_tree.embeddings == embedding


@pytest.mark.slow
def test_bfloat16_storage_changes_nothing_without_embeddings():
  params = _bandit_params()
  plain = _policy(params, module=mcts, policy="gumbel_muzero_policy")
  compact = _policy(params, module=mcts, policy="gumbel_muzero_policy",
                    kwargs=(("embedding_dtype", jnp.bfloat16),))
  np.testing.assert_array_equal(plain.action_weights, compact.action_weights)


def test_tree_nbytes_and_to_dot():
  params = _bandit_params()
  tree = _policy(params, module=mcts, policy="muzero_policy").search_tree
  allocated = sum(x.nbytes for x in jax.tree.leaves(tree))
  for embedding in EMPTY:
    assert mcts.tree_nbytes(B, SIMS, A, embedding) == allocated
  dot = mcts.to_dot(tree, 1)
  assert dot.count("label=\"#") == int(np.sum(tree.node_visits[1] > 0))


def test_tree_reuse():
  """A kept subtree continues: its root's visits add up."""
  params = _bandit_params()

  @jax.jit
  def two_searches(params):
    root = _root(mcts, params, ())
    first = mcts.muzero_policy(params, jax.random.PRNGKey(1), root,
                               _bandit_fn(mcts), SIMS, dirichlet_fraction=0.0,
                               capacity=2 * SIMS + 1)
    kept = mcts.get_subtree(first.search_tree, first.action)
    second = mcts.muzero_policy(params, jax.random.PRNGKey(2), root,
                                _bandit_fn(mcts), SIMS,
                                dirichlet_fraction=0.0, tree=kept)
    return kept, second.search_tree

  kept, tree = two_searches(params)
  assert kept.embeddings == () and tree.embeddings == ()
  np.testing.assert_array_equal(
      tree.node_visits[:, 0], np.maximum(kept.node_visits[:, 0], 1) + SIMS)


def _stochastic_fns(module):
  """A die with two faces after each action: reward = arm's + face."""
  def decision_fn(params, rng_key, action, embedding):
    del rng_key
    out = module.DecisionRecurrentFnOutput(
        chance_logits=jnp.zeros((B, 2)),
        afterstate_value=params["reward"][jnp.arange(B), action])
    return out, embedding

  def chance_fn(params, rng_key, outcome, embedding):
    del rng_key
    out = module.ChanceRecurrentFnOutput(
        action_logits=params["inner_logits"], value=jnp.zeros(B),
        reward=outcome.astype(jnp.float32), discount=jnp.full((B,), 0.5))
    return out, embedding
  return decision_fn, chance_fn


@pytest.mark.slow
def test_stochastic_policy_matches_mctx():
  """mctx 0.0.71's stochastic policy reads the batch size from the
  embedding: it gets a dummy one, ours none."""
  params = _bandit_params()

  @functools.partial(jax.jit, static_argnames="module")
  def run(params, embedding, module):
    return module.stochastic_muzero_policy(
        params, jax.random.PRNGKey(1), _root(module, params, embedding),
        *_stochastic_fns(module), num_simulations=SIMS,
        dirichlet_fraction=0.0)

  ours, theirs = run(params, (), mcts), run(params, jnp.zeros(B), mctx)
  np.testing.assert_allclose(ours.action_weights, theirs.action_weights,
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(ours.search_tree.node_visits,
                                theirs.search_tree.node_visits)


def test_sampled_policy():
  """Sampled arms, no embedding: Gumbel finds the best sample."""
  samples = jax.random.uniform(jax.random.PRNGKey(3), (B, A, 1))

  def recurrent_fn(params, rng_key, action, embedding):
    del params, rng_key
    out = mcts.SampledRecurrentFnOutput(
        reward=-(action[:, 0] - 0.5) ** 2, discount=jnp.zeros(B),
        value=jnp.zeros(B), sampled_actions=jnp.zeros((B, A, 1)),
        prior_logits=jnp.zeros((B, A)))
    return out, embedding

  root = mcts.SampledRootFnOutput(sampled_actions=samples,
                                  prior_logits=jnp.zeros((B, A)),
                                  value=jnp.zeros(B), embedding=())
  out = jax.jit(lambda root: mcts.sampled_muzero_policy(
      (), jax.random.PRNGKey(1), root, recurrent_fn, num_simulations=SIMS,
      policy="gumbel", gumbel_scale=0.0))(root)
  best = np.argmin((np.asarray(samples[..., 0]) - 0.5) ** 2, axis=1)
  np.testing.assert_array_equal(out.action_index, best)
