"""The perfect Connect Four solver (bitbully) as a yardstick: our positions
seen by the solver (hand-made positions whose answers are known), the
solver as an opponent, and the move accuracy on solved positions."""
import io
import random
import sys

import jax
import numpy as np
import pytest

import envs
from agents import play as play_lib
from agents.evaluation import accuracy
from agents.evaluation import audit
from agents.evaluation import during_training
from agents.evaluation import evaluator
from agents.evaluation import player as player_lib
from agents.evaluation import solver as solver_lib
from agents.evaluation.matches import match
from agents.evaluation.opponents import make_opponent, random_opponent
from tests.agents.helpers import make_run, tiny

bitbully = pytest.importorskip("bitbully")

# A few positions for the default suite (solving: ~15 ms each).
N = 60


def _state(moves):
  """Our Connect Four state after ``moves`` (columns) from the start."""
  env = envs.make("connect4")
  state = env.init(jax.random.PRNGKey(0))
  for column in moves:
    state = env.step(state, column)
  return jax.device_get(state)


def _scores(moves):
  state = _state(moves)
  return solver_lib.shared_solver().scores(state.board,
                                           int(state.current_player))


# ------------------------------------------------------------- conversion
def test_empty_board_scores_are_bitbullys_documented_ones():
  expected = {3: 1, 2: 0, 4: 0, 1: -1, 5: -1, 0: -2, 6: -2}
  assert _scores([]).tolist() == [expected[c] for c in range(7)]


def test_immediate_win_is_found_in_the_right_column():
  # X on the bottom row in columns 0, 1 and 2, O on top of them: X to move
  # wins at once in column 3 (a mirrored board would put it in column 3
  # too, so the next test checks an asymmetric one).
  scores = _scores([0, 0, 1, 1, 2, 2])
  assert int(np.argmax(scores)) == 3 and scores[3] > 0
  # X stacked three high in column 6, O in column 5: X wins in column 6
  # only (it also wins later elsewhere, but not as soon).
  scores = _scores([6, 5, 6, 5, 6, 0])
  assert int(np.argmax(scores)) == 6
  assert scores[6] > max(np.delete(scores, 6))


def test_forced_loss_is_scored_as_a_loss_for_the_player_to_move():
  # X on columns 2, 3 and 4 of the bottom row, 1 and 5 open: O (player 1,
  # to move) cannot stop both; every move of O loses.
  state = _state([3, 0, 4, 0, 2])
  assert int(state.current_player) == 1
  scores = solver_lib.shared_solver().scores(state.board, 1)
  assert np.all(scores < 0), scores


def test_full_column_is_illegal_and_board_matches_bitbully_moves():
  moves = [3, 3, 3, 3, 3, 3, 2]
  scores = _scores(moves)
  assert scores[3] == solver_lib.ILLEGAL and np.all(np.delete(scores, 3)
                                                    > solver_lib.ILLEGAL)
  rng = np.random.default_rng(0)
  for _ in range(20):
    line = accuracy.random_moves(int(rng.integers(1 << 30)), 0)
    state = _state(line)
    assert solver_lib.to_board(state.board) == bitbully.Board(line)
    np.testing.assert_array_equal(
        accuracy.board_array(bitbully.Board(line)), state.board)


def test_to_board_checks_the_player_to_move_and_the_shape():
  state = _state([3])
  with pytest.raises(ValueError, match="player 0 is to move"):
    solver_lib.to_board(state.board, 0)
  with pytest.raises(ValueError, match=r"shape \[6, 7\]"):
    solver_lib.to_board(np.zeros((3, 3), np.int32))


def test_missing_bitbully_names_the_install(monkeypatch):
  monkeypatch.setitem(sys.modules, "bitbully", None)
  assert not solver_lib.available()
  with pytest.raises(ImportError, match="pip install bitbully"):
    solver_lib.Solver()


# --------------------------------------------------------------- opponent
def test_solver_opponent_wins_every_game_as_first_player():
  env = envs.make("connect4")
  result = match(env, make_opponent("solver", env), random_opponent(env),
                 games_per_side=6, seed=1)
  assert result["first"]["win"] == 1.0
  # As second player too, against random moves.
  assert result["second"]["win"] == 1.0


def test_solver_opponent_is_seeded_and_refuses_other_games():
  env = envs.make("connect4")
  states = jax.vmap(env.init)(jax.random.split(jax.random.PRNGKey(0), 16))
  opp = make_opponent("solver", env)
  moves = []
  for _ in range(2):
    opp.reset(16, 7)
    moves.append(opp.act(states, np.ones(16, bool)).tolist())
  assert moves[0] == moves[1] and set(moves[0]) == {3}
  # Equally good moves are drawn at random: after 3, 3 the best ones tie.
  state = _state([3, 3])
  best = np.flatnonzero(_scores([3, 3]) == _scores([3, 3]).max())
  picks = {solver_lib.shared_solver().best_move(state.board,
                                                random.Random(s))
           for s in range(40)}
  assert picks == set(best.tolist())
  with pytest.raises(ValueError, match="connect4 only"):
    make_opponent("solver", envs.make("tictactoe"))


# --------------------------------------------------------------- accuracy
def test_positions_phases_and_determinism():
  positions = accuracy.solved_positions(N, seed=3)
  phases = accuracy.phase_index(positions.stones)
  assert phases.shape == (N,) and np.all(phases >= 0)
  assert set(phases.tolist()) == {0, 1, 2}  # Every phase is represented.
  assert accuracy.phase_index([0, 11, 12, 27, 28, 41]).tolist() == [
      0, 0, 1, 1, 2, 2]
  with pytest.raises(ValueError, match="stones"):
    accuracy.phase_index([42])
  # Seeded: built again from scratch, the same; a prefix of a larger set.
  accuracy.solved_positions.cache_clear()
  again = accuracy.solved_positions(N // 2, seed=3)
  for a, b in zip(positions, again):
    np.testing.assert_array_equal(a[:N // 2], b)
  other = accuracy.solved_positions(N // 2, seed=4)
  assert not np.array_equal(other.moves, again.moves)


def test_keeps_outcome():
  ill = solver_lib.ILLEGAL
  scores = np.array([[3, 0, -2, ill, 1, -1, 5],
                     [0, 0, -1, -4, ill, 0, 0],
                     [-3, -1, -9, -2, -5, -7, -1]])
  # Any winning move keeps a win, not only the fastest; a full column never.
  np.testing.assert_array_equal(
      accuracy.keeps_outcome(scores, [4, 0, 2]), [True, True, True])
  np.testing.assert_array_equal(
      accuracy.keeps_outcome(scores, [1, 2, 0]), [False, False, True])
  np.testing.assert_array_equal(
      accuracy.keeps_outcome(scores, [3, 4, 7]), [False, False, False])
  # The third position is lost whatever the move: not critical.
  np.testing.assert_array_equal(accuracy.critical(scores),
                                [True, True, False])


def test_accuracy_of_the_solver_is_one_and_of_random_play_below():
  env = envs.make("connect4")
  perfect = accuracy.move_accuracy(make_opponent("solver", env), env, N)
  assert perfect["solver_accuracy"] == 1.0
  assert perfect["solver_accuracy_positions"] == N
  assert all(perfect[f"solver_accuracy_{name}"] == 1.0
             for name, _, _ in accuracy.PHASES)
  assert perfect["solver_accuracy_critical"] == 1.0
  rand = accuracy.move_accuracy(random_opponent(env), env, N)
  assert rand["solver_accuracy"] < 0.8
  # Random moves keep the outcome of every non-critical position.
  hard = rand["solver_accuracy_critical_positions"]
  assert 0 < hard < N
  assert rand["solver_accuracy_critical"] == pytest.approx(
      1 - (1 - rand["solver_accuracy"]) * N / hard)
  line = accuracy.format_accuracy(rand, "random")
  assert line.startswith("random: move accuracy") and "endgame" in line


@pytest.fixture(scope="module")
def c4_run(tmp_path_factory):
  """A tiny Connect Four AlphaZero run directory (untrained)."""
  run = tmp_path_factory.mktemp("runs") / "c4"
  make_run(run, tiny("connect4", algo="alphazero"))
  return str(run)


def test_play_cli_accuracy_and_match_against_solver(c4_run, capsys):
  run = c4_run
  out = io.StringIO()
  assert play_lib.main([str(run), "--accuracy", str(N)], out=out) == 0
  assert "move accuracy" in out.getvalue()
  assert f"on {N} solved positions" in out.getvalue()
  out = io.StringIO()
  assert play_lib.main([str(run), "--against", "solver", "--games", "2"],
                       out=out) == 0
  assert "score: A" in out.getvalue()
  assert play_lib.main([str(run), "--accuracy", "0"],
                       out=io.StringIO()) == 2
  assert "--accuracy" in capsys.readouterr().err


def test_play_cli_accuracy_of_muzero_with_the_true_rules(c4_run,
                                                        tmp_path):
  """A MuZero run's --accuracy has a second line: its networks searching
  with the true rules; AlphaZero's has one (its search uses them)."""
  run = tmp_path / "mz"
  make_run(run, tiny("connect4", algo="muzero"))
  lines = {}
  for name, path in (("muzero", run), ("alphazero", c4_run)):
    out = io.StringIO()
    assert play_lib.main([str(path), "--accuracy", str(N)], out=out) == 0
    lines[name] = [l for l in out.getvalue().splitlines()
                   if "move accuracy" in l]
  assert len(lines["muzero"]) == 2 and len(lines["alphazero"]) == 1
  assert "with the true rules in place of its model" in lines["muzero"][1]


def test_training_evaluation_logs_accuracy(c4_run, monkeypatch):
  player = player_lib.load(c4_run)
  monkeypatch.setattr(during_training, "FINAL_SOLVER_POSITIONS", N // 2)
  evaluation = during_training.TrainingEvaluation(
      player.agent, log=lambda *_: None, solver_positions=N)
  quick = evaluation.quick(player.params, 1)
  assert quick["solver_accuracy_positions"] == N
  assert 0.0 <= quick["solver_accuracy"] <= 1.0
  assert "vs_random_first_win" in quick
  final = evaluation.final(player.params)
  assert final["solver_accuracy_positions"] == N // 2
  assert "move accuracy" in evaluator.format_report(final)
  off = during_training.TrainingEvaluation(player.agent, log=lambda *_: None)
  assert "solver_accuracy" not in off.quick(player.params, 1)
  monkeypatch.setattr(solver_lib, "available", lambda: False)
  assert "pip install bitbully" in evaluation.final(
      player.params)["solver_accuracy_skipped"]


# ------------------------------------------------------------------ audit
def test_audit_summary_by_hand():
  M = audit.Move
  games = [
      [M(0, True, 1), M(2, True, 1), M(14, False, 1), M(16, True, -1)],
      [M(1, True, 0), M(29, False, 0)],
      [M(0, True, 1), M(2, True, 1)],
  ]
  r = audit.summarize(games)
  assert (r["games"], r["moves"], r["lost"]) == (3, 8, 2)
  assert r["lost_opening"] == 0.0           # 5 opening moves, all kept.
  assert r["lost_middle"] == 0.5            # 14 lost, 16 kept.
  assert r["lost_endgame"] == 1.0
  assert r["clean"] == pytest.approx(1 / 3)
  assert r["first_loss_opening"] == 0.0
  assert r["first_loss_middle"] == pytest.approx(1 / 3)
  assert r["first_loss_endgame"] == pytest.approx(1 / 3)
  assert r["won_games"] == 2 and r["wins_lost"] == 0.5
  empty = audit.summarize([])
  assert empty["moves"] == 0 and empty["clean"] is None
  text = audit.format_audit(dict(first=r, second=empty), "A")
  assert "0.500 of 2 won games" in text.splitlines()[2]


def test_audit_of_the_solver_and_of_random_play():
  """The solver never loses the solved outcome and keeps every win it
  starts from; random play as first player gives its win away in every
  game (as second, from a lost start, every move keeps the loss)."""
  env = envs.make("connect4")
  perfect = audit.Audited(make_opponent("solver", env))
  match(env, perfect, random_opponent(env), games_per_side=3, seed=2)
  first, second = (audit.summarize(perfect.moves[:3]),
                   audit.summarize(perfect.moves[3:]))
  assert first["lost"] == 0 and first["clean"] == 1.0
  assert first["won_games"] == 3 and first["wins_lost"] == 0.0
  assert second["lost"] == 0 and second["moves"] > 0
  rand = audit.Audited(random_opponent(env))
  match(env, rand, make_opponent("solver", env), games_per_side=3, seed=2)
  r = audit.summarize(rand.moves[:3])
  assert r["clean"] == 0.0 and r["lost"] >= 3
  assert r["won_games"] == 3 and r["wins_lost"] == 1.0
  both = audit.summarize(rand.moves)
  assert sum(both[f"first_loss_{p[0]}"] for p in accuracy.PHASES) == (
      pytest.approx(1.0 - both["clean"]))


def test_play_cli_audit(c4_run, capsys):
  out = io.StringIO()
  assert play_lib.main([c4_run, "--against", "solver", "--games", "2",
                        "--audit"], out=out) == 0
  lines = out.getvalue().splitlines()
  assert any(l.startswith("first ") and "won games" in l for l in lines)
  assert play_lib.main([c4_run, "--audit"], out=io.StringIO()) == 2
  assert "--audit goes with --against" in capsys.readouterr().err
