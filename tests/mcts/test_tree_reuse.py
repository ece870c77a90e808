"""Tree reuse: get_subtree re-roots a searched tree; searches continue it."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mcts
from tests.mcts import problems
from tests.mcts import reference_search as rs


def _structure(children_index, visits, values, node=0, path=()):
  """{action path: (visits, value)} of one tree, from numpy arrays."""
  out = {path: (int(visits[node]), float(values[node]))}
  for a, child in enumerate(children_index[node]):
    if child >= 0:
      out.update(_structure(children_index, visits, values, child,
                            path + (a,)))
  return out


def _reference_structure(node, path=()):
  out = {path: (node.visits, node.value)}
  for a, child in node.children.items():
    out.update(_reference_structure(child, path + (a,)))
  return out


def _assert_same_structure(ours, reference):
  assert sorted(ours) == sorted(reference)
  for path in ours:
    assert ours[path][0] == reference[path][0], path
    np.testing.assert_allclose(ours[path][1], reference[path][1], rtol=1e-4,
                               atol=1e-4, err_msg=str(path))


def _root_logits(logits):
  """What muzero_policy makes of root logits with dirichlet_fraction=0."""
  probs = np.exp(logits - logits.max())
  probs = probs / probs.sum()
  return np.log(np.maximum(probs, np.finfo(np.float32).tiny))


@pytest.mark.parametrize("seed,first,more", [
    (0, 12, 10), pytest.param(1, 20, 7, marks=pytest.mark.slow),
    pytest.param(2, 5, 16, marks=pytest.mark.slow)])
def test_continued_search_matches_reference_sequence(seed, first, more):
  """N simulations, re-root on the most visited action, M more: the same
  tree as the reference builds by the same sequence."""
  problem = problems.make_problem(seed, num_actions=3, batch_size=2,
                                  discount_kind="zero_sum")
  capacity = first + more + 1
  policy = functools.partial(mcts.muzero_policy, dirichlet_fraction=0.0,
                             temperature=0.0, capacity=capacity,
                             recurrent_fn=problem.recurrent_fn(mcts))
  params = problem.params()
  out = jax.jit(functools.partial(policy, num_simulations=first))(
      params, jax.random.PRNGKey(0), problem.root(mcts))
  action = out.action
  kept = mcts.get_subtree(out.search_tree, action)
  child_states = np.asarray(kept.embeddings[:, 0])
  out2 = jax.jit(functools.partial(policy, num_simulations=more))(
      params, jax.random.PRNGKey(1), problem.root(mcts, child_states),
      tree=kept)
  tree = out2.search_tree

  qtransform = rs.qtransform_by_parent_and_siblings
  select = lambda node: rs.puct_select(node, None, qtransform, None,
                                       pb_c_init=1.25, pb_c_base=19652.0)
  for b in range(problem.batch_size):
    logits, value, state = problem.np_root(b)
    root = rs.Node(0, _root_logits(logits), value, state)
    rs._run_simulations(root, problem.np_step, first, capacity, select,
                        select)
    child = root.children[int(action[b])]
    child.parent = None
    # The new root's output is the child state's table entry.
    child.prior_logits = _root_logits(
        problem.prior_logits[child.embedding].astype(np.float64))
    child.raw_value = float(problem.value[child.embedding])
    rs._run_simulations(child, problem.np_step, more, capacity, select,
                        select)
    ours = _structure(np.asarray(tree.children_index[b]),
                      np.asarray(tree.node_visits[b]),
                      np.asarray(tree.node_values[b]))
    _assert_same_structure(ours, _reference_structure(child))
    np.testing.assert_allclose(out2.action_weights[b],
                               child.child_visits() / child.child_visits()
                               .sum(), atol=1e-6)


def test_get_subtree_keeps_the_subtree_in_creation_order():
  problem = problems.make_problem(3, num_actions=4, batch_size=3)
  out = mcts.gumbel_muzero_policy(problem.params(), jax.random.PRNGKey(0),
                                  problem.root(mcts),
                                  problem.recurrent_fn(mcts),
                                  num_simulations=30)
  tree = out.search_tree
  # Re-root on an expanded action for trees 0 and 1, an unexpanded one (or
  # action 0 if all are expanded) for tree 2.
  visits = np.asarray(tree.children_visits[:, 0])
  actions = np.array([np.argmax(visits[0]), np.argsort(visits[1])[-2],
                      np.argmin(visits[2])])
  kept = mcts.get_subtree(tree, jnp.asarray(actions, jnp.int32))
  for b in range(3):
    old_child = int(tree.children_index[b, 0, actions[b]])
    new_visits = np.asarray(kept.node_visits[b])
    if old_child < 0:
      assert new_visits.sum() == 0
      continue
    old = _structure(np.asarray(tree.children_index[b]),
                     np.asarray(tree.node_visits[b]),
                     np.asarray(tree.node_values[b]), node=old_child)
    new = _structure(np.asarray(kept.children_index[b]), new_visits,
                     np.asarray(kept.node_values[b]))
    assert old == new
    count = (new_visits > 0).sum()
    assert np.all(new_visits[count:] == 0) and np.all(new_visits[:count] > 0)
    parents = np.asarray(kept.parents[b])
    assert parents[0] == -1 and np.all(parents[1:count] < np.arange(1, count))
    assert np.all(parents[count:] == -1)
    np.testing.assert_array_equal(kept.embeddings[b, :count],
                                  tree.embeddings[b][np.sort(
                                      [n for n in range(31)
                                       if _descends(tree, b, n, old_child)])])


def _descends(tree, b, node, ancestor):
  while node >= 0:
    if node == ancestor:
      return True
    node = int(tree.parents[b, node])
  return False


@pytest.mark.parametrize("policy", [
    pytest.param("muzero_policy", marks=pytest.mark.slow),
    "gumbel_muzero_policy"])
def test_continued_search_adds_visits_and_respects_capacity(policy):
  problem = problems.make_problem(5, num_actions=4, batch_size=2,
                                  with_invalid=True)
  fn = functools.partial(getattr(mcts, policy),
                         recurrent_fn=problem.recurrent_fn(mcts))
  params, root = problem.params(), problem.root(mcts)
  invalid = problem.invalid_actions_jax()
  out = fn(params, jax.random.PRNGKey(0), root, num_simulations=16,
           invalid_actions=invalid, capacity=40)
  kept = mcts.get_subtree(out.search_tree, out.action)
  kept_nodes = np.asarray((kept.node_visits > 0).sum(1))
  kept_root_visits = np.asarray(kept.node_visits[:, 0])
  child_root = problem.root(mcts, np.asarray(kept.embeddings[:, 0]))
  more = 30  # More than the free slots of some trees: those fill up.
  out2 = fn(params, jax.random.PRNGKey(1), child_root, num_simulations=more,
            tree=kept)
  tree = out2.search_tree
  visits = np.asarray(tree.node_visits)
  expected_new = np.minimum(more, 40 - np.maximum(kept_nodes, 1))
  np.testing.assert_array_equal(
      visits[:, 0], np.maximum(kept_root_visits, 1) + expected_new)
  children_visits = np.asarray(tree.children_visits)
  has_children = children_visits.sum(-1) > 0
  np.testing.assert_array_equal(
      (visits - children_visits.sum(-1))[has_children], 1)
  np.testing.assert_allclose(out2.action_weights.sum(-1), 1.0, rtol=1e-5)


def test_kept_tree_must_match_the_roots():
  problem = problems.make_problem(0, num_actions=3, batch_size=2)
  out = mcts.muzero_policy(problem.params(), jax.random.PRNGKey(0),
                           problem.root(mcts), problem.recurrent_fn(mcts),
                           num_simulations=4)
  other = problems.make_problem(0, num_actions=3, batch_size=3)
  with pytest.raises(ValueError, match="tree has batch 2"):
    mcts.muzero_policy(other.params(), jax.random.PRNGKey(0),
                       other.root(mcts), other.recurrent_fn(mcts),
                       num_simulations=4, tree=out.search_tree)
