"""`mcts.qtransforms`: the children's statistics in both reductions, the
completed Q-values against their formula, and the descriptions of the
library's Q-transforms."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mcts
from tests.mcts import problems


def test_children_stats_one_pass_equals_separate_reductions(monkeypatch):
  # Rows of 80 actions take the separate reductions; forcing the one-pass
  # (variadic) reduction on the same rows must give the same statistics,
  # including a row with no visited child and one with all visited.
  rng = np.random.default_rng(0)
  q = rng.normal(size=(4, 80)).astype(np.float32)
  visits = rng.integers(0, 3, (4, 80)).astype(np.int32)
  visits[0] = 0
  visits[1] = 1
  probs = rng.dirichlet(np.ones(80), 4).astype(np.float32)
  separate = mcts.qtransforms.children_stats(q, visits, probs)
  monkeypatch.setattr(mcts.reductions, "ONE_PASS_BELOW", 1000)
  one_pass = jax.jit(mcts.qtransforms.children_stats)(q, visits, probs)
  for name, a, b in zip(separate._fields[:4], separate, one_pass):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5,
                               err_msg=name)
  visited_q = np.ma.masked_array(q, visits == 0)
  np.testing.assert_array_equal(np.asarray(one_pass.min_q)[1:],
                                visited_q.min(-1)[1:])
  np.testing.assert_array_equal(np.asarray(one_pass.max_q)[1:],
                                visited_q.max(-1)[1:])
  np.testing.assert_array_equal(np.asarray(one_pass.num_unvisited),
                                (visits == 0).sum(-1))
  assert np.isinf(one_pass.min_q[0]) and one_pass.visited_mass[0] == 0


@pytest.mark.parametrize("num_actions", [
    16, pytest.param(80, marks=pytest.mark.slow)])
def test_completed_qvalues_match_a_direct_formula(num_actions):
  # Both paths of qtransform_completed_by_mix_value against eq. 33 and the
  # min-max rescale written out with numpy, on a searched tree.
  problem = problems.make_problem(num_actions, num_actions=num_actions,
                                  batch_size=1)
  tree = mcts.gumbel_muzero_policy(
      problem.params(), jax.random.PRNGKey(0), problem.root(mcts),
      problem.recurrent_fn(mcts), num_simulations=24,
      gumbel_scale=0.0).search_tree
  for node in range(3):
    got = np.asarray(mcts.qtransform_completed_by_mix_value(
        jax.tree.map(lambda x: x[0], tree), node))
    q = np.asarray(tree.qvalues(jnp.array([node])))[0].astype(np.float64)
    n = np.asarray(tree.children_visits[0, node], np.float64)
    logits = np.asarray(tree.children_prior_logits[0, node], np.float64)
    p = np.exp(logits - logits.max())
    p /= p.sum()
    visited = n > 0
    v = float(tree.raw_values[0, node])
    if visited.any():
      v = (v + n.sum() * (p * q)[visited].sum() / p[visited].sum()) / (
          1 + n.sum())
    completed = np.where(visited, q, v)
    completed = (completed - completed.min()) / max(
        completed.max() - completed.min(), 1e-8)
    np.testing.assert_allclose(got, (50 + n.max()) * 0.1 * completed,
                               rtol=1e-4, atol=1e-5)


def test_described_reads_the_qtransforms_as_mctx_users_pass_them():
  described, q = mcts.qtransforms.described, mcts.qtransforms
  assert described(mcts.qtransform_by_parent_and_siblings) == (
      q.ByParentAndSiblings(epsilon=1e-8))
  assert described(functools.partial(
      mcts.qtransform_by_min_max, min_value=-1.0, max_value=2.0)) == (
          q.ByMinMax(min_value=-1.0, max_value=2.0))
  mix = q.CompletedByMixValue(value_scale=0.5)
  assert described(functools.partial(mcts.qtransform_completed_by_mix_value,
                                     value_scale=0.5)) == mix
  assert described(mix) is mix
  # A user's Q-transform, and partials the library's functions would not
  # accept, stay as they are.
  for other in (lambda tree, node: 0.0,
                functools.partial(mcts.qtransform_by_min_max, min_value=0.0),
                functools.partial(mcts.qtransform_by_parent_and_siblings,
                                  scale=2.0),
                functools.partial(mcts.qtransform_by_parent_and_siblings,
                                  None)):
    assert described(other) is other


@pytest.mark.parametrize("qtransform,kwargs", [
    (mcts.qtransform_by_parent_and_siblings, {}),
    (mcts.qtransform_by_parent_and_siblings, dict(epsilon=0.5)),
    (mcts.qtransform_by_min_max, dict(min_value=-2.0, max_value=3.0)),
    (mcts.qtransform_completed_by_mix_value, {}),
    (mcts.qtransform_completed_by_mix_value,
     dict(value_scale=0.3, maxvisit_init=5.0, rescale_values=False,
          use_mixed_value=False))])
def test_descriptions_compute_what_they_describe(qtransform, kwargs):
  # Bit for bit, defaults included: the description's defaults are the
  # function's.
  problem = problems.make_problem(3, num_actions=5, batch_size=1)
  tree = mcts.muzero_policy(
      problem.params(), jax.random.PRNGKey(0), problem.root(mcts),
      problem.recurrent_fn(mcts), num_simulations=12).search_tree
  one_tree = jax.tree.map(lambda x: x[0], tree)
  description = mcts.qtransforms.described(
      functools.partial(qtransform, **kwargs))
  assert isinstance(description, mcts.qtransforms.LIBRARY)
  for node in range(3):
    np.testing.assert_array_equal(description(one_tree, node),
                                  qtransform(one_tree, node, **kwargs))
