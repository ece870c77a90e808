"""Tests of agents/runs/console.py: the lines around a long step, and the
progress by ply of a lock-step match (what the final evaluation against
MCTSBot and `agents.play --against` show)."""
import re

import envs
from agents.evaluation import matches
from agents.evaluation import opponents
from agents.runs import console


def test_timed_says_what_and_how_long():
  lines = []
  with console.timed(lines.append, "Compiling the thing (8 games)",
                     "Compiled the thing"):
    lines.append("work")
  assert lines[:2] == ["Compiling the thing (8 games)...", "work"]
  assert re.fullmatch(r"Compiled the thing in \d+\.\d s", lines[2])


def test_match_progress_by_ply(capsys):
  env = envs.make("tictactoe")
  seen = []
  with console.ply_progress(9, "random vs random") as on_ply:
    def record(plies, running):
      seen.append((plies, running))
      on_ply(plies, running)
    matches.match(env, opponents.random_opponent(env),
                  opponents.random_opponent(env), 8, on_ply=record)
  plies = [p for p, _ in seen]
  assert plies == list(range(1, len(plies) + 1)) and 5 <= plies[-1] <= 9
  assert seen[0][1] == 16 and seen[-1][1] == 0  # Games still running.
  err = capsys.readouterr().err
  assert "random vs random" in err and "ply" in err
  assert f"{plies[-1]}/9" in err and "games_running=0" in err
  with console.ply_progress(9, "quiet", enabled=False) as on_ply:
    assert on_ply is None
