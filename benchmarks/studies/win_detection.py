"""Which winning moves of Connect Four a trained MuZero model sees.

Positions: the states of uniformly random games (``--games`` of them,
every ply) where the player to move has a winning move. For each such
winning move, the run's model predicts its reward one step ahead
(``represent`` then ``dynamics``, as the search's first expansion does);
the moves are grouped by the line the move completes (horizontal,
vertical, either diagonal; moves that complete two lines are left out).
For comparison, the same for one non-winning legal move of each position.
Printed per run: the mean predicted reward (true 1 for wins, 0 for the
others) and the share of winning moves predicted below 0.5, per line.

  python -m benchmarks.studies.win_detection runs/c4-mz-conv-2p runs/c4-mz-conv-2p-s1
"""
import argparse

import jax
import jax.numpy as jnp
import numpy as np

import envs
from agents.evaluation.player import load

# (row step, column step) of each line a move can complete.
LINES = dict(horizontal=(0, 1), vertical=(1, 0), diagonal=(1, 1),
             antidiagonal=(1, -1))


def random_games(env, num_games: int, seed: int):
  """``(state, action, after)`` of every ply of ``num_games`` uniformly
  random games, each ``[G, T, ...]`` (``T = env.max_episode_steps``; past
  a game's end, ``state.terminated``)."""
  def play(key):
    def move(state, key):
      logits = jnp.where(state.legal_action_mask, 0.0, -jnp.inf)
      action = jax.random.categorical(key, logits)
      after = env.step(state, action)
      return after, (state, action, after)
    _, out = jax.lax.scan(move, env.init(key),
                          jax.random.split(key, env.max_episode_steps))
    return out

  keys = jax.random.split(jax.random.PRNGKey(seed), num_games)
  return jax.jit(jax.vmap(play))(keys)


def live_plies(tree, state):
  """The leaves of ``tree`` (each ``[G, T, ...]``) at the plies where
  ``state`` has not ended, as numpy ``[N, ...]``."""
  live = ~np.asarray(state.terminated).reshape(-1)
  return jax.tree.map(
      lambda x: np.asarray(x).reshape((-1,) + x.shape[2:])[live], tree)


def positions(env, num_games: int, seed: int):
  """Every non-terminal state of ``num_games`` uniformly random games:
  ``(observation [N, 6, 7, 2], board [N, 6, 7], legal [N, 7], player
  [N])``."""
  state, _, _ = random_games(env, num_games, seed)
  return live_plies((state.observation, state.board,
                     state.legal_action_mask, state.current_player), state)


def completed_lines(board, column: int, piece: int):
  """The lines of :data:`LINES` that ``piece`` completes by playing
  ``column`` on ``board [6, 7]`` (row 0 the top)."""
  row = int(np.sum(board[:, column] == 0)) - 1
  board = board.copy()
  board[row, column] = piece
  done = []
  for name, (dr, dc) in LINES.items():
    length = 1
    for sign in (1, -1):
      r, c = row + sign * dr, column + sign * dc
      while 0 <= r < 6 and 0 <= c < 7 and board[r, c] == piece:
        length += 1
        r, c = r + sign * dr, c + sign * dc
    if length >= 4:
      done.append(name)
  return done


def moves(env, num_games: int, seed: int):
  """``(observation [M, ...], action [M], line [M])``: each winning move
  that completes one line (``line`` its name) and one non-winning legal
  move of the same position (``line`` "none")."""
  obs, board, legal, player = positions(env, num_games, seed)
  rng = np.random.default_rng(seed)
  out_obs, out_action, out_line = [], [], []
  for i in range(len(obs)):
    lines = {a: completed_lines(board[i], a, player[i] + 1)
             for a in np.flatnonzero(legal[i])}
    winning = [a for a, done in lines.items() if done]
    others = [a for a, done in lines.items() if not done]
    if not winning:
      continue
    for a in winning:
      if len(lines[a]) == 1:
        out_obs.append(obs[i]), out_action.append(a)
        out_line.append(lines[a][0])
    if others:
      out_obs.append(obs[i]), out_action.append(rng.choice(others))
      out_line.append("none")
  return np.stack(out_obs), np.asarray(out_action, np.int32), np.asarray(
      out_line)


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("runs", nargs="+", help="Connect Four MuZero run dirs")
  p.add_argument("--games", type=int, default=1000)
  p.add_argument("--seed", type=int, default=0)
  a = p.parse_args()
  env = envs.make("connect4")
  obs, action, line = moves(env, a.games, a.seed)
  counts = ", ".join(f"{name} {np.sum(line == name)}"
                     for name in list(LINES) + ["none"])
  print(f"moves: {counts}")
  for run in a.runs:
    player = load(run)
    nets, support = player.agent.nets, player.agent.support
    reward = jax.jit(lambda o, a: support.logits_to_scalar(nets.dynamics(
        player.params, nets.represent(player.params, o), a)[1]))
    predicted = np.asarray(reward(jnp.asarray(obs), jnp.asarray(action)))
    won = line != "none"
    parts = [f"wins {predicted[won].mean():.3f} (missed "
             f"{np.mean(predicted[won] < 0.5):.2f})"]
    for name in LINES:
      r = predicted[line == name]
      parts.append(f"{name} {r.mean():.3f} ({np.mean(r < 0.5):.2f})")
    parts.append(f"non-winning {predicted[~won].mean():.3f}")
    print(f"{run}: " + ", ".join(parts), flush=True)


if __name__ == "__main__":
  main()
