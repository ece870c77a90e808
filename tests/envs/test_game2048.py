"""Tests of envs/game2048.py: hand-made boards, legal moves, terminal boards,
the spawn distribution, determinism, and agreement with pgx's 2048."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs import game2048 as g

UP, RIGHT, DOWN, LEFT = range(4)
ENV = g.Game2048()


def exps(tiles):
  """Tile values -> exponents (0 stays 0), int32 numpy."""
  tiles = np.asarray(tiles)
  return np.where(tiles > 0, np.log2(np.maximum(tiles, 1)), 0).astype(
      np.int32)


def tiles(board):
  board = np.asarray(board)
  return np.where(board > 0, 2 ** board, 0)


_slide = jax.jit(g.slide)
_step = jax.jit(ENV.step)
_step_with = jax.jit(ENV.step_with_outcome)
_from_board = jax.jit(ENV.from_board)


def slide_row_left(row):
  board = np.zeros((4, 4), np.int64)
  board[0] = row
  after, reward, changed = _slide(exps(board), LEFT)
  return list(tiles(after)[0]), float(reward), bool(changed)


@pytest.mark.parametrize("row,expected,reward", [
    ([2, 2, 2, 2], [4, 4, 0, 0], 8),
    ([4, 4, 8, 0], [8, 8, 0, 0], 8),        # The new 8 does not merge again.
    ([2, 2, 4, 0], [4, 4, 0, 0], 4),
    ([4, 2, 2, 0], [4, 4, 0, 0], 4),
    ([2, 2, 2, 0], [4, 2, 0, 0], 4),        # The pair nearest the wall first.
    ([0, 2, 2, 2], [4, 2, 0, 0], 4),
    ([2, 0, 0, 2], [4, 0, 0, 0], 4),
    ([0, 0, 0, 8], [8, 0, 0, 0], 0),
    ([8, 8, 16, 16], [16, 32, 0, 0], 48),
    ([2, 4, 2, 4], [2, 4, 2, 4], 0),
])
def test_slide_hand_made_rows(row, expected, reward):
  got, got_reward, changed = slide_row_left(row)
  assert got == expected
  assert got_reward == reward
  assert changed == (row != expected)


def test_directions():
  board = exps([[2, 2, 0, 4],
                [0, 0, 0, 4],
                [2, 0, 0, 8],
                [0, 0, 0, 8]])
  want = {
      UP: ([[4, 2, 0, 8], [0, 0, 0, 16], [0] * 4, [0] * 4], 4 + 8 + 16),
      RIGHT: ([[0, 0, 4, 4], [0, 0, 0, 4], [0, 0, 2, 8], [0, 0, 0, 8]], 4),
      DOWN: ([[0] * 4, [0] * 4, [0, 0, 0, 8], [4, 2, 0, 16]], 4 + 8 + 16),
      LEFT: ([[4, 4, 0, 0], [4, 0, 0, 0], [2, 8, 0, 0], [8, 0, 0, 0]], 4),
  }
  for action, (expected, reward) in want.items():
    after, r, changed = _slide(board, action)
    np.testing.assert_array_equal(tiles(after), expected, err_msg=str(action))
    assert float(r) == reward and bool(changed)


def test_legal_moves_and_illegal_action():
  # Only right and down change this board.
  board = exps([[2, 4, 8, 0],
                [4, 8, 16, 0],
                [8, 16, 32, 0],
                [0, 0, 0, 0]])
  np.testing.assert_array_equal(g.legal_moves(board),
                                [False, True, True, False])
  state = _from_board(board, jax.random.PRNGKey(0))
  np.testing.assert_array_equal(state.legal_action_mask,
                                [False, True, True, False])
  for action in (UP, LEFT, 4, -1):
    nxt = _step(state, jnp.int32(action))
    assert bool(nxt.terminated) and float(nxt.reward) == -1.0
    np.testing.assert_array_equal(nxt.board, board)
    assert float(nxt.score) == 0.0
  # Stepping a finished game is a no-op with zero reward.
  again = _step(nxt, jnp.int32(RIGHT))
  jax.tree.map(np.testing.assert_array_equal,
               again, nxt._replace(reward=jnp.float32(0),
                                   rewards=jnp.zeros(1, jnp.float32)))


def test_terminal_board():
  full = exps([[2, 4, 2, 4], [4, 2, 4, 2], [2, 4, 2, 4], [4, 2, 4, 2]])
  state = _from_board(full, jax.random.PRNGKey(0))
  assert bool(state.terminated)
  np.testing.assert_array_equal(state.legal_action_mask, True)
  before = _from_board(
      exps([[2, 4, 2, 4], [4, 2, 4, 2], [2, 4, 2, 4], [0, 4, 2, 4]]),
      jax.random.PRNGKey(0))
  # Left slides the last row to [4, 2, 4, 0]; a 2 at cell 15 locks the board.
  end = _step_with(before, jnp.int32(LEFT), jnp.int32(2 * 15 + 0))
  np.testing.assert_array_equal(tiles(end.board)[3], [4, 2, 4, 2])
  assert bool(end.terminated) and float(end.reward) == 0.0
  np.testing.assert_array_equal(end.legal_action_mask, True)
  assert int(end.chance_outcome) == 30


def test_spawn_distribution():
  board = exps([[2, 0, 4, 8], [0, 2, 4, 8], [2, 4, 8, 0], [2, 4, 8, 16]])
  n = 40_000
  keys = jax.random.split(jax.random.PRNGKey(1), n)
  outcomes = np.asarray(jax.jit(jax.vmap(g.draw_outcome, (0, None)))(
      keys, board))
  cells, fours = outcomes // 2, outcomes % 2
  assert set(np.unique(cells)) == {1, 4, 11}   # Only the empty cells.
  # 5-sigma bounds around 1/3 per cell and 10% fours.
  for c in (1, 4, 11):
    p = np.mean(cells == c)
    assert abs(p - 1 / 3) < 5 * np.sqrt(2 / 9 / n), (c, p)
  assert abs(np.mean(fours) - 0.1) < 5 * np.sqrt(0.09 / n)
  np.testing.assert_allclose(
      np.asarray(g.outcome_probs(board)).reshape(16, 2)[[1, 4, 11]],
      [[0.3, 1 / 30]] * 3, rtol=1e-6)
  # env.step spawns through the same draw: one new tile in an empty cell of
  # the afterstate, a 4 about 10% of the time.
  m = 4000
  nxt = jax.jit(jax.vmap(lambda k: ENV.step(ENV.from_board(board, k),
                                            DOWN)))(keys[:m])
  after = np.asarray(_slide(board, DOWN)[0])
  new = np.asarray(nxt.board) != after[None]
  assert (new.reshape(m, -1).sum(-1) == 1).all()
  assert (after[new.any(0)] == 0).all()
  spawned = np.asarray(nxt.board)[new]
  assert set(np.unique(spawned)) == {1, 2}
  assert abs(np.mean(spawned == 2) - 0.1) < 5 * np.sqrt(0.09 / m)
  np.testing.assert_array_equal(np.asarray(nxt.chance_outcome) // 2,
                                np.argmax(new.reshape(m, -1), 1))


def test_init_and_determinism_under_jit_and_vmap():
  env = envs.make("2048")
  assert isinstance(env, g.Game2048) and env.num_actions == 4
  keys = jax.random.split(jax.random.PRNGKey(3), 8)
  states = jax.jit(jax.vmap(env.init))(keys)
  counts = (np.asarray(states.board) > 0).reshape(8, -1).sum(-1)
  np.testing.assert_array_equal(counts, 2)
  assert np.asarray(states.observation).shape == (8, 4, 4, 18)
  np.testing.assert_array_equal(
      np.argmax(np.asarray(states.observation), -1), states.board)

  def play(key, noise):
    def body(s, u):
      a = jnp.argmax(jnp.where(s.legal_action_mask, u, -1.0))
      s = env.step(s, a)
      return s, (s.board, s.reward)
    return jax.lax.scan(body, env.init(key), noise)

  noise = np.random.default_rng(4).random((8, 40, 4))
  final, (boards, rewards) = jax.jit(jax.vmap(play))(keys, noise)
  # Game 5 again, one move at a time, not batched: the same game.
  state = jax.jit(env.init)(keys[5])
  for t in range(40):
    action = np.argmax(np.where(state.legal_action_mask, noise[5, t], -1.0))
    state = _step(state, jnp.int32(action))
    np.testing.assert_array_equal(state.board, boards[5, t])
    assert float(state.reward) == float(rewards[5, t])
  np.testing.assert_allclose(final.score, np.asarray(rewards).sum(-1))
  assert not np.array_equal(boards[0], boards[1])
  text = env.render(jax.tree.map(lambda x: x[0], final))
  assert "score" in text


# ------------------------------------------------------------ against pgx
@functools.lru_cache(maxsize=None)
def _pgx_game(batch, steps):
  """Random legal play of pgx's 2048: boards [T+1, B, 16], actions [T, B],
  rewards [T, B], masks [T+1, B, 4], terminated [T+1, B]."""
  pgx = pytest.importorskip("pgx")
  env = pgx.make("2048")

  def body(state, key):
    act_key, step_key = jax.random.split(key)
    logits = jnp.where(state.legal_action_mask, 0.0, -jnp.inf)
    action = jax.random.categorical(act_key, logits)
    nxt = jax.vmap(env.step)(state, action,
                             jax.random.split(step_key, batch))
    return nxt, (nxt._board, action, nxt.rewards[:, 0],
                 nxt.legal_action_mask, nxt.terminated)

  @jax.jit
  def run(key):
    init_key, key = jax.random.split(key)
    state = jax.vmap(env.init)(jax.random.split(init_key, batch))
    _, out = jax.lax.scan(body, state, jax.random.split(key, steps))
    first = (state._board[None], state.legal_action_mask[None],
             state.terminated[None])
    boards, actions, rewards, masks, terms = out
    return (jnp.concatenate([first[0], boards]), actions, rewards,
            jnp.concatenate([first[1], masks]),
            jnp.concatenate([first[2], terms]))

  return jax.tree.map(np.asarray, run(jax.random.PRNGKey(7)))


def test_same_games_as_pgx():
  """Our env replays pgx's games: pgx's action order is (left, up, right,
  down), ours (up, right, down, left); each of pgx's spawns is read off its
  next board as the cell where it differs from our afterstate and forced on
  ours. Boards, rewards, legal moves and game ends must agree."""
  batch, steps = 64, 150
  boards, actions, rewards, masks, terms = _pgx_game(batch, steps)

  @jax.jit
  def replay(board0, pgx_actions, next_boards):
    def body(state, inp):
      pgx_action, pgx_next = inp
      action = (pgx_action + 3) % 4
      after, _, _ = g.slide(state.board, action)
      diff = (pgx_next.reshape(4, 4) != after).reshape(-1)
      cell = jnp.argmax(diff)
      outcome = 2 * cell + pgx_next[cell] - 1
      nxt = ENV.step_with_outcome(state, action, outcome)
      # Exactly one new tile, in an empty cell of our afterstate.
      ok = (jnp.sum(diff) == 1) & (after.reshape(-1)[cell] == 0)
      return nxt, (nxt.board.reshape(-1), nxt.reward, nxt.legal_action_mask,
                   nxt.terminated, ok | state.terminated)
    state = ENV.from_board(board0.reshape(4, 4), jax.random.PRNGKey(0))
    return state, jax.lax.scan(body, state, (pgx_actions, next_boards))[1]

  first, (ours, our_rewards, our_masks, our_terms, ok) = jax.vmap(
      replay, (0, 1, 1), (0, 1))(boards[0], actions, boards[1:])
  live = ~terms[:-1]                            # [T, B] pgx moves that happen
  assert live.sum() > 0.9 * batch * 60 and terms[-1].mean() > 0.5
  assert np.asarray(ok)[live].all()
  np.testing.assert_array_equal(np.asarray(ours)[live], boards[1:][live])
  np.testing.assert_array_equal(np.asarray(our_rewards)[live], rewards[live])
  np.testing.assert_array_equal(np.asarray(our_terms)[live], terms[1:][live])
  # Our masks are pgx's rolled: ours[a] = pgx[(a + 1) % 4].
  pgx_masks = np.roll(masks, -1, axis=-1)
  np.testing.assert_array_equal(np.asarray(our_masks)[live],
                                pgx_masks[1:][live])
  np.testing.assert_array_equal(first.legal_action_mask, pgx_masks[0])
