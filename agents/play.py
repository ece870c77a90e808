"""Play a trained agent in the terminal, or let it play a match.

    python -m agents.play RUN_DIR                 # you move first
    python -m agents.play RUN_DIR --second        # the agent moves first
    python -m agents.play RUN_DIR --show-search   # its statistics every move
    python -m agents.play RUN_DIR --against mcts:1000 --games 200
    python -m agents.play RUN_DIR --against OTHER_RUN_DIR --games 50
    python -m agents.play RUN_DIR --against solver      # Connect Four
    python -m agents.play RUN_DIR --against solver --audit  # its mistakes
    python -m agents.play RUN_DIR --accuracy 1000 [--accuracy-mcts 1000]
    python -m agents.play RUN_DIR --model-errors 500 [--simulations 64]
    python -m agents.play RUN_DIR --against random --games 100  # 2048

At your turn type a legal move (its number), ``?`` for the search
statistics of the agent's last move (visit share and Q-value of its top
moves, from its point of view), ``h`` for help or ``q`` to quit (end of
input and Ctrl-C quit too). ``--against X`` plays ``--games`` games per side
between RUN_DIR and X: another run directory, ``mcts:<simulations>``
(OpenSpiel's MCTSBot), ``random``, ``perfect`` (tic-tac-toe) or ``solver``
(Connect Four's perfect solver; needs bitbully), with a progress bar by ply
on stderr, and prints the score; with ``--audit`` (Connect Four) the solver
checks each of the agent's moves in those games and a table tells, by seat
and phase, where it lost the solved outcome
(:mod:`agents.evaluation.audit`). ``--accuracy N`` prints the agent's move
accuracy on N solved Connect Four positions
(:mod:`agents.evaluation.accuracy`), for a MuZero run also that of the same
networks searching with the true rules in place of the learned model (what
the model costs), and with ``--accuracy-mcts SIMS`` OpenSpiel's MCTSBot's on
the same positions. ``--model-errors N``
(MuZero runs) prints the errors of the learned model against the true game
on N random positions and how often its search chooses the move of the
same search on the true rules (:mod:`agents.evaluation.model_errors`).
A one-player game (2048) is scored with ``--against random``: the agent's
mean score over ``--games`` games, and a random player's over as many.
Flags are never abbreviated.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Optional, TextIO

import jax
import numpy as np

from agents.evaluation import player as player_lib
from agents.evaluation.audit import Audited, format_audit, summarize
from agents.evaluation.evaluator import Evaluator, format_report
from agents.evaluation.accuracy import (format_accuracy, move_accuracy,
                                        solved_positions)
from agents.evaluation.matches import match
from agents.evaluation.model_errors import (format_model_errors,
                                            model_errors, true_rules_agent)
from agents.evaluation.opponents import (MCTSBotOpponent, make_opponent,
                                         search_opponent)
from agents.evaluation.solver import check_env
from agents.runs.console import ply_progress

HELP = ("Type the number of a legal move, ? for the agent's search "
        "statistics of its last move, h for this help, q to quit.")
NAMES = ("X", "O")


def show_board(env, state) -> str:
  """The board of ONE state; tic-tac-toe shows each free cell's number."""
  text = env.render(state)
  if env.name != "tictactoe":
    return text
  board = np.asarray(state.board)
  lines = text.splitlines()
  rows = [" ".join(NAMES[v - 1] if v else str(3 * r + c)
                   for c, v in enumerate(board[3 * r:3 * r + 3]))
          for r in range(3)]
  return "\n".join(rows + lines[3:])


def search_report(out, num_simulations: int, top: int = 5) -> str:
  """Visit share and Q-value of the most visited moves of the first search
  of a ``PolicyOutput`` batch (from the searching player's view)."""
  summary = out.search_tree.summary()
  share = np.asarray(summary.visit_probs[0])
  q = np.asarray(summary.qvalues[0])
  lines = [f"search: {num_simulations} simulations, value "
           f"{float(summary.value[0]):+.3f}, chose {int(out.action[0])}",
           "  move  visits      Q"]
  for a in np.argsort(-share, kind="stable")[:top]:
    if share[a] > 0:
      lines.append(f"  {a:>4}  {100 * share[a]:>5.1f}%  {q[a]:+.3f}")
  return "\n".join(lines)


def _result_line(winner: int, human_seat: int) -> str:
  if winner < 0:
    return "Draw."
  return "You win!" if winner == human_seat else "The agent wins."


def play_interactive(player, human_seat: int, inp: TextIO, out: TextIO, *,
                     show_search: bool = False, sample: bool = False,
                     seed: int = 0) -> Optional[int]:
  """One game between a person (reading ``inp``, writing ``out``) and
  ``player``. ``human_seat``: 0 = the person moves first. Returns the
  winner (-1 for a draw), or None if the person quit (q, end of input)."""
  env = player.env
  step = jax.jit(env.step)
  state = env.init(jax.random.PRNGKey(seed))
  key = jax.random.PRNGKey(seed)
  last_search = None
  out.write(f"{env.name}: you play {NAMES[human_seat]} "
            f"({'first' if human_seat == 0 else 'second'}) against "
            f"{player}.\n{HELP}\n")
  while not bool(state.terminated):
    out.write("\n" + show_board(env, state) + "\n")
    if int(state.current_player) == human_seat:
      legal = np.flatnonzero(np.asarray(state.legal_action_mask)).tolist()
      out.write(f"legal moves: {' '.join(map(str, legal))}\n")
      while True:
        out.write("your move> ")
        out.flush()
        line = inp.readline()
        if not line:
          out.write("\nend of input: bye.\n")
          return None
        text = line.strip().lower()
        if text in ("q", "quit", "exit"):
          out.write("bye.\n")
          return None
        if text in ("h", "help"):
          out.write(HELP + "\n")
        elif text == "?":
          out.write((last_search or "the agent has not moved yet") + "\n")
        elif not text.lstrip("-").isdigit():
          out.write(f"{line.strip()!r} is not a move: {HELP}\n")
        elif int(text) not in legal:
          out.write(f"{int(text)} is not a legal move here; legal moves: "
                    f"{' '.join(map(str, legal))}\n")
        else:
          action = int(text)
          break
    else:
      batch = jax.tree.map(lambda x: x[None], state)
      key, search_key, sample_key = jax.random.split(key, 3)
      search = player.search(batch, search_key, greedy=not sample)
      action = int(player_lib.sample_action(
          sample_key, search, batch.legal_action_mask)[0] if sample
                   else search.action[0])
      last_search = search_report(search, player.num_simulations)
      out.write(f"the agent plays {action}\n")
      if show_search:
        out.write(last_search + "\n")
    state = step(state, action)
  # The last move's rewards (state.winner is not a field of every env).
  rewards = np.asarray(state.rewards)
  winner = int(np.argmax(rewards)) if rewards.max() > 0 else -1
  out.write("\n" + show_board(env, state) + "\n"
            + _result_line(winner, human_seat) + "\n")
  return winner


def score_report(a_name: str, b_name: str, result, games: int) -> str:
  """The table of a :func:`agents.evaluation.matches.match` result and the
  score."""
  lines = [f"{a_name} against {b_name}, {games} games per side:",
           f"{'A plays':<10} {'win':>6} {'draw':>6} {'loss':>6}"]
  points = 0.0
  for side in ("first", "second"):
    r = result[side]
    lines.append(f"{side:<10} {r['win']:>6.3f} {r['draw']:>6.3f} "
                 f"{r['loss']:>6.3f}")
    points += games * (r["win"] + 0.5 * r["draw"])
  lines.append(f"score: A {points:g} - {2 * games - points:g} B  "
               f"(win 1, draw 1/2; A = {a_name}, B = {b_name})")
  return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      prog="python -m agents.play", allow_abbrev=False,
      description="Play a trained agent in the terminal, or a match "
      "between it and another player (--against).")
  p.add_argument("run_dir", metavar="RUN_DIR",
                 help="a training run directory (python -m agents.train)")
  side = p.add_mutually_exclusive_group()
  side.add_argument("--first", dest="human_seat", action="store_const",
                    const=0, help="you move first (the default)")
  side.add_argument("--second", dest="human_seat", action="store_const",
                    const=1, help="the agent moves first")
  p.add_argument("--show-search", action="store_true",
                 help="print the agent's search statistics after each of "
                 "its moves (otherwise type ?)")
  p.add_argument("--sample", action="store_true",
                 help="the agent samples its moves from its search policy "
                 "(default: its greedy choice)")
  p.add_argument("--simulations", type=int,
                 help="search simulations per move (default: the run's)")
  p.add_argument("--against", metavar="X",
                 help="play a match against X: a run directory, "
                 "mcts:<simulations> (OpenSpiel's MCTSBot), random, "
                 "perfect (tic-tac-toe) or solver (Connect Four; needs "
                 "bitbully); one-player games (2048): random only, their "
                 "mean scores")
  p.add_argument("--audit", action="store_true",
                 help="with --against (Connect Four): the solver checks "
                 "every move of the agent in the match; prints where, by "
                 "seat and phase, its moves lost the solved outcome (needs "
                 "bitbully)")
  p.add_argument("--games", type=int, default=100,
                 help="games per side with --against (one-player games: "
                 "games of each) (default 100)")
  p.add_argument("--accuracy", type=int, metavar="N",
                 help="print the agent's move accuracy on N solved "
                 "Connect Four positions (its greedy search's move keeps "
                 "the solved outcome); needs bitbully (default: not)")
  p.add_argument("--accuracy-mcts", type=int, metavar="SIMS",
                 help="with --accuracy: also OpenSpiel's MCTSBot(SIMS)'s "
                 "on the same positions (slow) (default: not)")
  p.add_argument("--model-errors", type=int, metavar="N",
                 help="print the errors of a MuZero agent's learned model "
                 "against the true game on N random positions (5-move "
                 "random continuations) and how often its search agrees "
                 "with the same search on the true rules (default: not)")
  p.add_argument("--seed", type=int, default=0,
                 help="seed of the games (default 0)")
  return p


def accuracy_report(agent, num: int, mcts_simulations: Optional[int]
                    ) -> str:
  """The lines of ``--accuracy``: the agent's move accuracy on ``num``
  solved positions, for a MuZero agent also that of its networks searching
  with the true rules, and, if ``mcts_simulations``, MCTSBot's."""
  check_env(agent.env)
  start = time.perf_counter()
  solved_positions(num)
  lines = [f"solved {num} positions in {time.perf_counter() - start:.1f} s"]
  label = f"{agent.run_dir} ({agent.num_simulations} simulations)"
  players = [(search_opponent(agent), label)]
  if agent.algo == "muzero":
    true_rules = player_lib.Player(agent.config, agent.params,
                                   agent=true_rules_agent(agent.agent))
    players.append((search_opponent(true_rules),
                    f"{label} with the true rules in place of its model"))
  if mcts_simulations:
    players.append((MCTSBotOpponent(agent.env, mcts_simulations),
                    f"OpenSpiel's MCTSBot({mcts_simulations})"))
  for player, label in players:
    start = time.perf_counter()
    result = move_accuracy(player, agent.env, num)
    lines.append(format_accuracy(result, label)
                 + f" in {time.perf_counter() - start:.1f} s")
  return "\n".join(lines)


def solo_report(agent, games: int, seed: int) -> str:
  """A one-player game's score: ``agent``'s greedy search over ``games``
  games and a uniformly random player's over as many (the final
  evaluation of ``agents.train``), with the ratio of their means when
  the random player's is positive."""
  results = Evaluator(agent.agent, games)(agent.params,
                                          jax.random.PRNGKey(seed))
  text = (f"{agent.run_dir} ({agent.num_simulations} simulations per "
          f"move), {games} games, and as many by a random player:\n"
          + format_report(results))
  if results["random_return"] > 0:  # A ratio of scores (2048).
    ratio = results["eval_return"] / results["random_return"]
    text += f"\nscore over random: {ratio:.2f}x"
  return text


def model_errors_report(agent, num: int, seed: int) -> str:
  """The lines of ``--model-errors``: :func:`model_errors` of ``agent``'s
  learned model on ``num`` positions (refuses a run that has none)."""
  if agent.algo != "muzero":
    raise ValueError(f"--model-errors needs a muzero run (a learned "
                     f"model); {agent.run_dir} was trained with algo "
                     f"{agent.algo}")
  start = time.perf_counter()
  result = model_errors(agent.agent, agent.params, agent.env, num, seed)
  return (format_model_errors(
      result, f"{agent.run_dir} ({agent.num_simulations} simulations)")
          + f"\nmeasured in {time.perf_counter() - start:.1f} s")


def main(argv=None, inp: TextIO = sys.stdin, out: TextIO = sys.stdout
         ) -> int:
  args = build_parser().parse_args(argv)
  try:
    if args.games < 1:
      raise ValueError(f"--games must be a positive integer, got "
                       f"{args.games}")
    agent = player_lib.load(args.run_dir, num_simulations=args.simulations)
    if agent.env.num_players == 1:
      if (args.against != "random" or args.audit or args.accuracy
          or args.model_errors):
        raise ValueError(
            f"{args.run_dir} plays {agent.env_name}, a one-player game: "
            "agents.play scores it with --against random alone (its mean "
            "score over --games games and a random player's)")
      out.write(solo_report(agent, args.games, args.seed) + "\n")
      return 0
    if args.accuracy is not None:
      if args.accuracy < 1:
        raise ValueError(f"--accuracy must be a positive integer, got "
                         f"{args.accuracy}")
      if args.accuracy_mcts is not None and args.accuracy_mcts < 1:
        raise ValueError(f"--accuracy-mcts must be a positive integer, "
                         f"got {args.accuracy_mcts}")
      out.write(accuracy_report(agent, args.accuracy, args.accuracy_mcts)
                + "\n")
      return 0
    if args.model_errors is not None:
      if args.model_errors < 1:
        raise ValueError(f"--model-errors must be a positive integer, got "
                         f"{args.model_errors}")
      out.write(model_errors_report(agent, args.model_errors, args.seed)
                + "\n")
      return 0
    if args.audit and not args.against:
      raise ValueError("--audit goes with --against X (the match whose "
                       "moves the solver checks)")
    if args.against:
      other = make_opponent(args.against, agent.env)
      me = search_opponent(agent)
      if args.audit:
        me = Audited(me)
      with ply_progress(agent.env.max_episode_steps or 0,
                        f"against {args.against}") as on_ply:
        result = match(agent.env, me, other, args.games, args.seed, on_ply)
      out.write(score_report(args.run_dir, args.against, result,
                             args.games) + "\n")
      if args.audit:
        by_seat = dict(first=summarize(me.moves[:args.games]),
                       second=summarize(me.moves[args.games:]))
        out.write(format_audit(by_seat, f"{args.run_dir} against "
                               f"{args.against}") + "\n")
      return 0
    play_interactive(agent, args.human_seat or 0, inp, out,
                     show_search=args.show_search, sample=args.sample,
                     seed=args.seed)
    return 0
  except (player_lib.LoadError, ValueError, ImportError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    out.write("\ninterrupted: bye.\n")
    return 130


if __name__ == "__main__":
  sys.exit(main())
