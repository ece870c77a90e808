"""The learned model's errors against the true game
(agents/evaluation/model_errors.py): keys and ranges, a perfect model
(the true game itself) that has no error, the true-rules search being
AlphaZero's, the sampled positions, the command line."""
import io

import jax
import numpy as np
import pytest

pytest.importorskip("haiku")

import envs  # pylint: disable=g-import-not-at-top
from agents import algorithms
from agents import play as play_lib
from agents.evaluation import model_errors as me
from tests.agents.helpers import make_run, random_states, tiny

UNROLL = 3


@pytest.fixture(scope="module")
def setup():
  """``(agent, params, env)``: a tiny tic-tac-toe MuZero agent whose
  params are random and moved off their init (the heads start at zero,
  which would give a uniform policy and a zero value everywhere)."""
  env = envs.make("tictactoe")
  agent = algorithms.make_agent(tiny("tictactoe", algo="muzero"), env)
  params = agent.nets.init(jax.random.PRNGKey(1),
                           env.init(jax.random.PRNGKey(0)).observation[None])
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.PRNGKey(2), len(leaves))
  params = jax.tree.unflatten(tree, [
      x + 0.3 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)])
  return agent, params, env


@pytest.mark.slow
def test_keys_and_ranges(setup):
  agent, params, env = setup
  r = me.model_errors(agent, params, env, 16, seed=0, unroll=UNROLL)
  assert all(isinstance(v, float) for v in r.values())
  assert r["positions"] == 16 and r["unroll"] == UNROLL
  for name in me.STEP_METRICS:
    for key in [name] + [f"{name}_{k}" for k in range(1, UNROLL + 1)]:
      assert key in r
  assert 0 <= r["search_agreement"] <= 1
  assert 0 <= r["policy_tv"] <= 1 and 0 < r["value_error"] <= 2
  assert 0 <= r["reward_error"] <= 2 and r["root_value_diff"] >= 0
  assert abs(r["root_value_bias"]) <= r["root_value_diff"] + 1e-9
  assert r["value_error_1"] >= 0 and not np.isnan(r["policy_tv_1"])
  assert "positions_opening" not in r  # Phases: Connect Four only.
  text = me.format_model_errors(r, "tiny")
  assert "search: same move as the true-rules search" in text
  assert len(text.splitlines()) == 8
  # No episode-end head: the model's discount is the game's everywhere.
  assert r["live_continuation"] == 1.0


def test_perfect_model_has_no_error(setup):
  """An agent whose model IS the game (the true-rules agent) has zero
  errors, predicts reward 1 for every winning move, and its search is the
  true-rules search."""
  agent, params, env = setup
  perfect = me.true_rules_agent(agent)
  r = me.model_errors(perfect, params, env, 16, seed=0, unroll=UNROLL)
  for name in me.STEP_METRICS:
    assert r[name] == pytest.approx(0.0, abs=1e-5)
  assert r["win_moves"] > 0 and r["win_reward"] == pytest.approx(1.0)
  assert r["terminal_value"] == 0.0
  assert r["end_continuation"] == 0.0 and r["live_continuation"] == 1.0
  assert r["search_agreement"] == 1.0
  assert r["root_value_diff"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.slow
def test_true_rules_search_is_alphazero(setup):
  """The true-rules search of the MuZero params is AlphaZero's search on
  the same networks."""
  agent, params, env = setup
  alphazero = algorithms.make_agent(tiny("tictactoe", algo="alphazero"),
                                    env)
  states = random_states(env, 8, plies=3)
  key = jax.random.PRNGKey(0)
  search = lambda a: jax.jit(lambda p, k, s: a.act(p, k, s, greedy=True))
  ours = search(me.true_rules_agent(agent))(params, key, states)
  theirs = search(alphazero)(params, key, states)
  np.testing.assert_array_equal(ours.action, theirs.action)
  np.testing.assert_allclose(ours.action_weights, theirs.action_weights,
                             atol=1e-6)


def test_random_positions_and_continuation():
  env = envs.make("connect4")
  states = me.random_positions(env, jax.random.PRNGKey(0), 64)
  assert states.legal_action_mask.shape == (64, 7)
  assert not np.any(np.asarray(states.terminated))
  assert len(set(np.asarray(states.step_count).tolist())) > 5
  actions, after, moved = me.random_continuation(
      env, jax.random.PRNGKey(1), states, 4)
  assert actions.shape == moved.shape == after.terminated.shape == (4, 64)
  assert np.all(np.asarray(moved[0]))
  # A move counts iff the game went on before it; every counted move legal.
  before = np.concatenate([np.asarray(states.terminated)[None],
                           np.asarray(after.terminated)[:-1]])
  np.testing.assert_array_equal(np.asarray(moved), ~before)
  assert np.all(np.asarray(after.reward)[np.asarray(moved)] >= 0)


@pytest.mark.slow  # 20 s on the loaded machine; the rest run by default.
def test_connect4_phases():
  env = envs.make("connect4")
  agent = algorithms.make_agent(tiny("connect4", algo="muzero"), env)
  params = agent.nets.init(jax.random.PRNGKey(0),
                           env.init(jax.random.PRNGKey(0)).observation[None])
  r = me.model_errors(agent, params, env, 8, seed=0, unroll=2)
  assert sum(r[f"positions_{p}"] for p in ("opening", "middle", "endgame")
             ) == 8
  assert "opening" in me.format_model_errors(r, "c4")


def test_cli_refuses_a_run_without_learned_model(tmp_path, capsys):
  out = tmp_path / "az"
  make_run(out, tiny("tictactoe", algo="alphazero"))
  assert play_lib.main([str(out), "--model-errors", "4"],
                       out=io.StringIO()) == 2
  err = capsys.readouterr().err
  assert err.startswith("error: --model-errors needs a muzero run")


@pytest.mark.slow
def test_cli_report(run):
  text = io.StringIO()
  assert play_lib.main([run[0], "--model-errors", "8"], out=text) == 0
  assert "learned model against the true game on 8 random" in \
      text.getvalue()
  assert play_lib.main([run[0], "--model-errors", "0"],
                       out=io.StringIO()) == 2
