"""Checks this project's `mcts` against the numpy reference and against mctx.

The reference (tests/mcts/reference_search.py) is itself validated against
mctx in test_reference_vs_mctx.py. Problems and configurations come from
tests/mcts/problems.py; all problems are filtered to be free of near-ties,
so the searches are fully determined (no dependence on tie-breaking noise
or float32 rounding).
"""

import jax
import mctx
import numpy as np
import pytest

import mcts
from tests.mcts import problems
from tests.mcts import reference_search as rs

CASE_PARAMS = (
    [pytest.param(c, id=c.name) for c in problems.CASES] +
    [pytest.param(c, id=c.name, marks=pytest.mark.slow)
     for c in problems.SLOW_CASES])

_CASES = {c.name: c for c in problems.CASES + problems.SLOW_CASES}


def _label(case, problem):
  return f"{case.name}/{problem.discount_kind}/seed={problem.seed}"


def _check_against_reference(out, case, problem, refs):
  label = _label(case, problem)
  assert isinstance(out.search_tree, mcts.Tree), label
  rs.assert_policy_output_matches(
      out, refs, check_action=case.deterministic_action, label=label)
  action = np.asarray(out.action)
  assert action.shape == (problem.batch_size,), label
  if not case.deterministic_action:
    # Sampled proportionally to the visit counts (temperature 1).
    visits = rs.stack(refs, "root_visits")
    assert np.all(visits[np.arange(problem.batch_size), action] > 0), label


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_mcts_matches_reference(case):
  """Whole tree, root statistics and policy outputs, under jax.jit."""
  runner = problems.policy_runner(mcts, case)
  for problem, refs in problems.case_problems(case):
    _check_against_reference(runner(problem), case, problem, refs)


@pytest.mark.parametrize("name", [
    "gz-b1a2n17",
    pytest.param("mz-b1a2n17", marks=pytest.mark.slow),
    pytest.param("gz-b3a5n12-inv-d3-m4-mixraw", marks=pytest.mark.slow),
    pytest.param("mz-b3a3n17-d2-minmax-pbc", marks=pytest.mark.slow),
])
def test_mcts_matches_reference_without_jit(name):
  case = _CASES[name]
  runner = problems.policy_runner(mcts, case, jit=False)
  problem, refs = problems.case_problems(case)[0]
  _check_against_reference(runner(problem), case, problem, refs)


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_mcts_matches_mctx(case):
  """Same problems through mcts and mctx (both jitted): same outputs."""
  run_mcts = problems.policy_runner(mcts, case)
  run_mctx = problems.policy_runner(mctx, case)
  for problem, refs in problems.case_problems(case):
    label = _label(case, problem)
    ours, theirs = run_mcts(problem), run_mctx(problem)
    np.testing.assert_allclose(
        np.asarray(ours.action_weights), np.asarray(theirs.action_weights),
        rtol=1e-4, atol=1e-5, err_msg=f"{label}: action_weights")
    for field in ("node_visits", "children_visits", "parents",
                  "action_from_parent", "children_index"):
      np.testing.assert_array_equal(
          np.asarray(getattr(ours.search_tree, field)),
          np.asarray(getattr(theirs.search_tree, field)),
          err_msg=f"{label}: {field}")
    exists = np.asarray(theirs.search_tree.node_visits) > 0
    np.testing.assert_allclose(
        np.asarray(ours.search_tree.node_values)[exists],
        np.asarray(theirs.search_tree.node_values)[exists],
        rtol=1e-4, atol=1e-5, err_msg=f"{label}: node_values")
    if case.deterministic_action:
      # Deterministic (gumbel_scale=0 / temperature=0): compare the actions
      # where the choice is clear.
      unique = np.array([r.action_is_unique for r in refs])
      np.testing.assert_array_equal(
          np.asarray(ours.action)[unique], np.asarray(theirs.action)[unique],
          err_msg=f"{label}: action")


def test_mcts_rng_key_is_irrelevant_without_noise():
  """With the noise off, the search must not depend on the rng key."""
  case = _CASES["gz-b3a5n32-inv"]
  runner = problems.policy_runner(mcts, case)
  problem, _ = problems.case_problems(case)[0]
  a = runner(problem, jax.random.PRNGKey(1))
  b = runner(problem, jax.random.PRNGKey(2))
  np.testing.assert_array_equal(np.asarray(a.search_tree.children_visits),
                                np.asarray(b.search_tree.children_visits))
  np.testing.assert_array_equal(np.asarray(a.action_weights),
                                np.asarray(b.action_weights))
