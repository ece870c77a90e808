"""Invalid actions inside the tree (`RecurrentFnOutput.invalid_actions`),
which mctx does not have: never visited, and an all-valid mask changes
nothing."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mcts
from tests.mcts import problems


def _masked_problem(seed, num_actions=4, batch_size=3):
  """A table problem whose states each forbid a random subset of actions
  (some states forbid all of them, like terminal states)."""
  problem = problems.make_problem(seed, num_actions=num_actions,
                                  batch_size=batch_size, discount_kind="mixed")
  rng = np.random.default_rng(seed + 1000)
  invalid = rng.random((problem.num_states, num_actions)) < 0.5
  invalid[rng.random(problem.num_states) < 0.05] = True
  table_fn = problem.recurrent_fn(mcts)

  def recurrent_fn(params, rng_key, action, embedding):
    out, next_embedding = table_fn(params, rng_key, action, embedding)
    return out.replace(invalid_actions=params["invalid"][next_embedding]), (
        next_embedding)

  params = dict(problem.params(), invalid=jnp.asarray(invalid))
  return problem, invalid, recurrent_fn, params


@pytest.mark.parametrize("policy", ["muzero_policy", "gumbel_muzero_policy"])
def test_interior_invalid_actions_are_never_visited(policy):
  fn = None
  for seed in range(6):
    problem, invalid, recurrent_fn, params = _masked_problem(seed)
    if fn is None:  # The same shapes: compile once.
      fn = jax.jit(functools.partial(getattr(mcts, policy),
                                     recurrent_fn=recurrent_fn,
                                     num_simulations=48))
    tree = fn(params, jax.random.PRNGKey(seed),
              problem.root(mcts)).search_tree
    visits = np.asarray(tree.node_visits)
    children_visits = np.asarray(tree.children_visits)
    # The state of each node: its embedding.
    states = np.asarray(tree.embeddings)
    for b in range(visits.shape[0]):
      for n in np.nonzero(visits[b])[0]:
        if n == 0:
          continue
        mask = invalid[states[b, n]]
        if mask.all():  # A node with no legal action is searched unmasked.
          continue
        assert np.all(children_visits[b, n][mask] == 0), (seed, b, n)
        if children_visits[b, n].sum() > 0:
          np.testing.assert_array_equal(
              np.asarray(tree.children_index[b, n])[mask], mcts.Tree.INVALID)


def test_interior_mask_of_all_valid_actions_changes_nothing():
  problem = problems.make_problem(4, num_actions=5, batch_size=2)
  table_fn = problem.recurrent_fn(mcts)

  def with_mask(params, rng_key, action, embedding):
    out, emb = table_fn(params, rng_key, action, embedding)
    return out.replace(invalid_actions=jnp.zeros_like(out.prior_logits)), emb

  def search(fn):
    return mcts.gumbel_muzero_policy(problem.params(), jax.random.PRNGKey(0),
                                     problem.root(mcts), fn,
                                     num_simulations=20)
  a, b = search(table_fn), search(with_mask)
  np.testing.assert_array_equal(a.search_tree.node_visits,
                                b.search_tree.node_visits)
  np.testing.assert_allclose(a.action_weights, b.action_weights, atol=1e-6)
