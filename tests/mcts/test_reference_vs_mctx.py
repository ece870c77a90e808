"""Checks the slow numpy reference search against DeepMind's mctx.

If these pass, `tests/mcts/reference_search.py` implements mctx's semantics and
can serve as the oracle for this project's `mcts` (test_against_reference.py).
"""

import math

import jax
import mctx
from mctx._src import seq_halving
import numpy as np
import pytest

from tests.mcts import problems
from tests.mcts import reference_search as rs

CASE_PARAMS = (
    [pytest.param(c, id=c.name) for c in problems.CASES] +
    [pytest.param(c, id=c.name, marks=pytest.mark.slow)
     for c in problems.SLOW_CASES])


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_reference_matches_mctx(case):
  runner = problems.policy_runner(mctx, case)
  for problem, refs in problems.case_problems(case):
    label = f"{case.name}/{problem.discount_kind}/seed={problem.seed}"
    out = runner(problem)
    rs.assert_policy_output_matches(
        out, refs, check_action=case.deterministic_action, label=label)
    if not case.deterministic_action:
      # The action is sampled from the visit counts (temperature 1).
      action = np.asarray(out.action)
      visits = rs.stack(refs, "root_visits")
      assert np.all(visits[np.arange(len(refs)), action] > 0), label


def test_cases_are_tie_free_and_varied():
  """The default cases cover what they claim, with no near-ties."""
  kinds = set()
  for case in problems.CASES:
    reevaluated = False
    for problem, refs in problems.case_problems(case):
      created = rs.stack(refs, "node_visits") > 0
      reevaluated |= bool(np.any(created.sum(axis=1) < case.num_simulations + 1))
      kinds.add(problem.discount_kind)
      for r in refs:
        assert r.well_conditioned(1e-4)
      if case.with_invalid:
        assert problem.invalid_actions.any()
        assert not problem.invalid_actions.all(axis=1).any()
    # With a depth cutoff, some existing leaf must have been re-evaluated.
    assert reevaluated == (case.max_depth is not None), case.name
  assert kinds == set(problems.DISCOUNT_KINDS)
  policies = {c.policy for c in problems.CASES}
  assert policies == {"muzero", "gumbel_muzero"}
  # Both a greedy (temperature 0) and a sampling muzero case.
  assert {c.deterministic_action for c in problems.CASES
          if c.policy == "muzero"} == {True, False}
  for case in problems.CASES:
    if case.deterministic_action:
      assert any(r.action_is_unique for _, refs in problems.case_problems(case)
                 for r in refs), case.name


@pytest.mark.parametrize("m", [0, 1, 2, 3, 4, 5, 7, 8, 16])
@pytest.mark.parametrize("n", [1, 2, 5, 17, 32, 100])
def test_considered_visit_sequence_matches_mctx(m, n):
  assert (tuple(rs.considered_visit_sequence(m, n)) ==
          seq_halving.get_sequence_of_considered_visits(m, n))


def test_reference_by_hand_two_simulations():
  """A tiny tree worked out by hand (2 actions, 2 simulations, pUCT)."""
  # State 0: root; action 0 -> state 1, action 1 -> state 2.
  table = {
      (0, 0): (0.5, 0.9, np.array([0.0, 0.0]), 1.0, 1),
      (0, 1): (0.0, 0.9, np.array([0.0, 0.0]), -1.0, 2),
      (1, 0): (0.2, 0.9, np.array([0.0, 0.0]), 0.3, 3),
      (1, 1): (0.2, 0.9, np.array([0.0, 0.0]), 0.3, 3),
  }
  model = lambda emb, a: table[(emb, a)]
  res = rs.search_one(np.array([1.0, 0.0]), 0.0, 0, model, policy="muzero",
                      num_simulations=2)
  # Sim 1: all Q-transforms 0 at the root, prior favours action 0 -> node 1.
  #   G = 0.5 + 0.9 * 1.0 = 1.4; root value (0 + 1.4) / 2 = 0.7.
  # Sim 2: root visits 2; normalized Q(a=0) = 1 (lo = 0.7, hi = 1.4) beats
  #   the prior bonus of action 1, so go to node 1; node 1 has no children,
  #   both priors equal -> action 0 (first index) -> node 2 (state 3).
  #   G = 0.2 + 0.9 * 0.3 = 0.47 -> node 1 value (1.0 + 0.47) / 2 = 0.735;
  #   G = 0.5 + 0.9 * 0.47 = 0.923 -> root (0.7 * 2 + 0.923) / 3.
  np.testing.assert_array_equal(res.node_visits, [3, 2, 1])
  np.testing.assert_array_equal(res.parents, [-1, 0, 1])
  np.testing.assert_array_equal(res.action_from_parent, [-1, 0, 0])
  np.testing.assert_allclose(res.node_values,
                             [(1.4 + 0.923) / 3, 0.735, 0.3])
  np.testing.assert_allclose(res.root_qvalues, [0.5 + 0.9 * 0.735, 0.0])
  np.testing.assert_array_equal(res.root_visits, [2, 0])
  np.testing.assert_allclose(res.action_weights, [1.0, 0.0])
  assert res.leaf_edges == [(0, 0), (1, 0)]
  # The priors of node 1 tie exactly, which the reference reports.
  assert res.min_margin == 0.0 and not res.well_conditioned()


def test_reference_depth_cutoff_is_running_mean():
  """At max_depth, an existing leaf is re-evaluated and averaged."""
  values = iter([1.0, 3.0])
  model = lambda emb, a: (0.0, 1.0, np.zeros(1), next(values), emb + 1)
  res = rs.search_one(np.zeros(1), 0.0, 0, model, policy="muzero",
                      num_simulations=2, max_depth=1)
  np.testing.assert_array_equal(res.node_visits, [3, 2, 0])
  np.testing.assert_allclose(res.node_values, [(0.0 + 1.0 + 2.0) / 3, 2.0,
                                               0.0])
  np.testing.assert_allclose(res.raw_values, [0.0, 3.0, 0.0])
  assert res.leaf_edges == [(0, 0), (0, 0)]


def test_problem_recurrent_fn_matches_numpy_model():
  problem = problems.make_problem(3, num_actions=4, batch_size=3,
                                  discount_kind="mixed", with_invalid=True)
  fn = jax.jit(problem.recurrent_fn(mctx))
  root = problem.root(mctx)
  action = np.array([0, 3, 1], np.int32)
  out, emb = fn(problem.params(), jax.random.PRNGKey(0), action,
                root.embedding)
  for b in range(3):
    r, d, logits, v, e = problem.np_step(problem.root_states[b], action[b])
    assert int(emb[b]) == e
    assert math.isclose(float(out.reward[b]), r)
    assert math.isclose(float(out.discount[b]), d)
    assert math.isclose(float(out.value[b]), v)
    np.testing.assert_array_equal(np.asarray(out.prior_logits[b]), logits)
  assert out.prior_logits.dtype == np.float32
