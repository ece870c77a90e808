"""OpenSpiel as an outside referee and opponent: the move-by-move mapping of
our tic-tac-toe and Connect Four to OpenSpiel's, and lock-step matches
(seats, scores, seeding) checked against players whose results are known."""
import jax
import numpy as np
import pytest

pyspiel = pytest.importorskip("pyspiel")

import envs  # pylint: disable=g-import-not-at-top
from agents.evaluation import matches
from agents.evaluation import opponents
from envs import openspiel_map


def _random_games(env_name, num_games, seed):
  """Every state of ``num_games`` uniformly random games, played in lock
  step by our env: a list over plies of batched states (numpy), and the
  actions ``[plies, G]``."""
  env = envs.make(env_name)
  step = jax.jit(jax.vmap(env.step))
  states = jax.vmap(env.init)(jax.random.split(jax.random.PRNGKey(0),
                                               num_games))
  rng = np.random.default_rng(seed)
  history, actions = [jax.device_get(states)], []
  while not np.all(history[-1].terminated):
    legal = history[-1].legal_action_mask
    # A uniformly random legal move per game (any move once terminated).
    a = np.array([rng.choice(np.flatnonzero(m)) for m in legal], np.int32)
    states = step(states, a)
    history.append(jax.device_get(states))
    actions.append(a)
  return history, np.array(actions)


@pytest.mark.parametrize("env_name,num_games", [("tictactoe", 400),
                                                ("connect4", 200)])
def test_mapping_agrees_with_openspiel_over_random_games(env_name,
                                                         num_games):
  """Replaying the same moves, OpenSpiel and we agree at every ply on the
  board, the player to move, the legal moves, the end and the winner."""
  history, actions = _random_games(env_name, num_games, seed=1)
  game = openspiel_map.load_game(env_name)
  winners = []
  for g in range(num_games):
    os_state = game.new_initial_state()
    for t, states in enumerate(history):
      state = jax.tree.map(lambda x: x[g], states)  # pylint: disable=cell-var-from-loop
      assert openspiel_map.mismatches(state, os_state) == [], (g, t)
      if os_state.is_terminal():
        break
      os_state.apply_action(
          openspiel_map.to_openspiel_action(env_name, actions[t, g]))
    assert os_state.is_terminal()
    winners.append(openspiel_map.winner(os_state))
  # The random games covered wins of both players and draws.
  assert set(winners) == {-1, 0, 1}


def test_mismatches_names_the_difference():
  """The check itself can fail: a shifted move, a wrong winner."""
  env = envs.make("connect4")
  state = env.step(env.init(jax.random.PRNGKey(0)), 3)
  os_state = openspiel_map.load_game("connect4").new_initial_state()
  os_state.apply_action(4)
  diff = openspiel_map.mismatches(state, os_state)
  assert len(diff) == 1 and diff[0].startswith("board")
  os_state = openspiel_map.load_game("connect4").new_initial_state()
  os_state.apply_action(3)
  assert openspiel_map.mismatches(state._replace(winner=np.int32(0)),
                                  os_state) == [
                                      "winner: ours 0, OpenSpiel -1"]
  with pytest.raises(ValueError, match="env_name.*catch"):
    openspiel_map.load_game("catch")


def test_board_reads_openspiel_rows_from_the_top():
  """Our Connect Four board has row 0 at the top; a first piece lands in
  the bottom row (ground truth by hand)."""
  os_state = openspiel_map.load_game("connect4").new_initial_state()
  for a in (3, 3, 0):
    os_state.apply_action(a)
  expected = np.zeros((6, 7), np.int32)
  expected[5, 3], expected[4, 3], expected[5, 0] = 1, 2, 1
  np.testing.assert_array_equal(openspiel_map.board(os_state), expected)


def test_matches_against_players_with_known_results():
  """Seats and signs: the perfect player never loses, and wins some games
  against a weak MCTSBot as first player; a strong MCTSBot beats a random
  player as first player; random never beats perfect."""
  env = envs.make("tictactoe")
  perfect = opponents.perfect_opponent(env)
  r = matches.match(env, perfect, opponents.MCTSBotOpponent(env, 2), 20)
  assert r["first"]["loss"] == r["second"]["loss"] == 0.0
  assert r["first"]["win"] > 0.5
  r = matches.match(env, opponents.MCTSBotOpponent(env, 1000),
                    opponents.random_opponent(env), 20)
  assert r["first"]["win"] >= 0.9
  r = matches.match(env, opponents.random_opponent(env), perfect, 20)
  assert r["first"]["win"] == r["second"]["win"] == 0.0
  assert r["first"]["loss"] > 0.5


def test_mcts_bot_matches_are_reproducible_per_seed():
  env = envs.make("connect4")
  seats = np.repeat([0, 1], 4)
  play = lambda seed: matches.play_games(
      env, opponents.MCTSBotOpponent(env, 50),
      opponents.MCTSBotOpponent(env, 20), seats, seed)
  a = play(0)
  np.testing.assert_array_equal(a, play(0))
  assert any(not np.array_equal(a, play(s)) for s in (1, 2, 3))


def test_make_opponent_errors():
  ttt, c4 = envs.make("tictactoe"), envs.make("connect4")
  assert opponents.make_opponent("mcts:30", c4).name == "mcts:30"
  for spec in ("mcts:", "mcts:0", "mcts:ten"):
    with pytest.raises(ValueError, match="mcts:<simulations>"):
      opponents.make_opponent(spec, ttt)
  with pytest.raises(ValueError, match="tictactoe only"):
    opponents.make_opponent("perfect", c4)
  with pytest.raises(ValueError, match="no such directory"):
    opponents.make_opponent("/nonexistent/run", ttt)
  with pytest.raises(ValueError, match="two-player"):
    matches.play_games(envs.make("catch"), None, None, [0])
  with pytest.raises(ValueError, match="simulations"):
    opponents.MCTSBotOpponent(ttt, 0)
  bot = opponents.MCTSBotOpponent(ttt, 5)
  with pytest.raises(ValueError, match="two opponent objects"):
    matches.play_games(ttt, bot, bot, [0])
  with pytest.raises(ValueError, match="a_seats"):
    matches.play_games(ttt, bot, opponents.random_opponent(ttt), [0, 2])
