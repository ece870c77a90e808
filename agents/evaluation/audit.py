"""Where a player goes wrong in its own games: every move it makes in a
Connect Four match is checked by the perfect solver
(:mod:`agents.evaluation.solver`) as it is made.

A move *loses the solved outcome* when its outcome under perfect play (win,
draw or loss) is worse than the best move's
(:func:`agents.evaluation.accuracy.keeps_outcome`). Unlike the move
accuracy on random positions, this measures the positions the player's own
play leads to, against a given opponent; by seat and by phase of the game
(:data:`agents.evaluation.accuracy.PHASES`), it tells where a first player
that should win lets the win go.
"""
from __future__ import annotations

from typing import Any, Dict, List, NamedTuple

import numpy as np

from agents.evaluation import solver as solver_lib
from agents.evaluation.accuracy import (PHASES, keeps_outcome, outcomes,
                                        phase_index)


class Move(NamedTuple):
  """One audited move: the stones on the board before it, whether it kept
  the solved outcome, and that outcome (+1 win, 0 draw, -1 loss for the
  mover) before the move."""
  stones: int
  kept: bool
  outcome: int


class Audited:
  """``opponent`` (any of :mod:`agents.evaluation.opponents`), its moves
  recorded with the solver's verdict: ``moves[g]``, the :class:`Move` list
  of game ``g`` since the last :meth:`reset`."""

  def __init__(self, opponent):
    solver_lib.check_env(opponent.env)
    self.inner = opponent
    self.env = opponent.env
    self.name = opponent.name
    self.solver = solver_lib.shared_solver()
    self.moves: List[List[Move]] = []

  def reset(self, num_games: int, seed: int) -> None:
    self.inner.reset(num_games, seed)
    self.moves = [[] for _ in range(num_games)]

  def act(self, states, to_act) -> np.ndarray:
    actions = np.asarray(self.inner.act(states, to_act))
    boards = np.asarray(states.board)
    players = np.asarray(states.current_player)
    stones = np.asarray(states.step_count)
    for g in np.flatnonzero(to_act):
      scores = self.solver.scores(boards[g], int(players[g]))[None]
      best = int(outcomes(scores)[2][0])
      kept = bool(keeps_outcome(scores, actions[g:g + 1])[0])
      self.moves[g].append(Move(int(stones[g]), kept, best))
    return actions

  def observe(self, actions, live) -> None:
    self.inner.observe(actions, live)


def _share(count: int, total: int):
  return count / total if total else None


def summarize(games: List[List[Move]]) -> Dict[str, Any]:
  """Flat entries of the audited ``games`` (one :class:`Move` list each):
  ``moves`` and ``lost`` (moves that lost the solved outcome) overall,
  ``lost_<phase>`` the share of the phase's moves that lost it, ``clean``
  the share of games without such a move, ``first_loss_<phase>`` the share
  of games whose first such move came in that phase, ``won_games`` the
  games where the player stood on a won position at some move and
  ``wins_lost`` the share of those where it later played a move that gave
  the win away."""
  moves = [m for game in games for m in game]
  phases = phase_index([m.stones for m in moves]) if moves else []
  out: Dict[str, Any] = dict(games=len(games), moves=len(moves),
                             lost=sum(not m.kept for m in moves))
  for i, (name, _, _) in enumerate(PHASES):
    in_phase = [m for m, p in zip(moves, phases) if p == i]
    out[f"lost_{name}"] = _share(sum(not m.kept for m in in_phase),
                                 len(in_phase))
  first = [next((m for m in game if not m.kept), None) for game in games]
  out["clean"] = _share(sum(m is None for m in first), len(games))
  first_phases = [int(phase_index([m.stones])[0]) for m in first if m]
  for i, (name, _, _) in enumerate(PHASES):
    out[f"first_loss_{name}"] = _share(first_phases.count(i), len(games))
  won = [g for g in games if any(m.outcome > 0 for m in g)]
  out["won_games"] = len(won)
  out["wins_lost"] = _share(
      sum(any(m.outcome > 0 and not m.kept for m in g) for g in won),
      len(won))
  return out


def format_audit(by_seat: Dict[str, Dict[str, Any]], label: str) -> str:
  """A table of :func:`summarize`'s entries by seat (``"first"``,
  ``"second"``)."""
  names = [p[0] for p in PHASES]
  fmt = lambda v: "   -" if v is None else f"{v:.3f}"
  lines = [f"{label}: moves checked by the solver (lost = the move does "
           "not keep the solved outcome)",
           f"{'plays':<7} {'moves':>5} {'lost':>5} "
           + " ".join(f"{'lost ' + n:>13}" for n in names)
           + f" {'clean games':>11} "
           + " ".join(f"{'1st loss ' + n:>17}" for n in names)
           + "  wins given away"]
  for seat, r in by_seat.items():
    lines.append(
        f"{seat:<7} {r['moves']:>5} {r['lost']:>5} "
        + " ".join(f"{fmt(r['lost_' + n]):>13}" for n in names)
        + f" {fmt(r['clean']):>11} "
        + " ".join(f"{fmt(r['first_loss_' + n]):>17}" for n in names)
        + f"  {fmt(r['wins_lost'])} of {r['won_games']} won games")
  return "\n".join(lines)
