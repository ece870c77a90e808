"""A trained agent in the terminal (``python -m agents.play``): the
interactive loop fed through streams, matches, errors."""
import io
import subprocess
import sys

import jax
import numpy as np
import pytest

pytest.importorskip("haiku")

import agents  # pylint: disable=g-import-not-at-top
from agents import play as play_lib
from tests.agents.helpers import ROOT, make_run, random_states, tiny


def _play(player, lines, human_seat=0, **kw):
  out = io.StringIO()
  winner = play_lib.play_interactive(player, human_seat,
                                     io.StringIO("".join(lines)), out, **kw)
  return winner, out.getvalue()


@pytest.mark.parametrize("human_seat", [0, 1])
def test_interactive_full_game(run, human_seat):
  """The person types 0..8 in order (each illegal one is refused); the
  game, replayed here with the agent's own moves, ends as printed."""
  player = agents.load(run[0])
  env = player.env
  typed = [str(i) for i in range(9)]
  winner, text = _play(player, [t + "\n" for t in typed], human_seat)
  state = env.init(jax.random.PRNGKey(0))
  pending = list(typed)
  while not bool(state.terminated):
    if int(state.current_player) == human_seat:
      legal = np.asarray(state.legal_action_mask)
      while not legal[int(pending[0])]:
        pending.pop(0)
      action = int(pending.pop(0))
    else:
      action = int(player.act(jax.tree.map(lambda x: x[None], state))[0])
    state = env.step(state, action)
  assert winner == int(state.winner)
  assert text.rstrip().endswith(play_lib.show_board(env, state) + "\n" + {
      -1: "Draw.", human_seat: "You win!"}.get(winner, "The agent wins."))
  assert text.count("the agent plays") == int(state.step_count) - (
      int(state.step_count) + 1 - human_seat) // 2


def test_interactive_illegal_malformed_help_and_eof(run):
  player = agents.load(run[0])
  first_agent_move = int(player.act(random_states(player.env, 1, plies=0))[0])
  winner, text = _play(
      player, ["?\n", f"{first_agent_move}\n", "abc\n", "-3\n", "99\n",
               "h\n"], human_seat=1)
  assert winner is None
  assert text.count("your move> ") == 7  # The last one reads the end.
  assert "visits" in text and "Q" in text  # The ? statistics.
  assert f"{first_agent_move} is not a legal move here" in text
  assert "'abc' is not a move" in text
  assert "-3 is not a legal move" in text and "99 is not a legal" in text
  assert text.endswith("end of input: bye.\n")
  # Before the agent has moved, and quitting.
  winner, text = _play(player, ["?\n", "q\n"], human_seat=0,
                       show_search=True)
  assert winner is None and "has not moved yet" in text
  assert text.endswith("bye.\n")


def test_interactive_show_search_and_sampled_moves(run):
  player = agents.load(run[0])
  _, text = _play(player, [], human_seat=1, show_search=True, sample=True)
  assert "the agent plays" in text and "search: 4 simulations" in text


@pytest.mark.slow
def test_cli_match_and_errors(run, tmp_path, capsys):
  out = io.StringIO()
  assert play_lib.main([run[0], "--against", "random", "--games", "4"],
                       out=out) == 0
  text = out.getvalue()
  assert "4 games per side" in text and "score: A" in text
  assert "against random" in capsys.readouterr().err  # The progress bar.
  rows = [l.split() for l in text.splitlines()
          if l.startswith(("first", "second"))]
  assert [float(x) for r in rows for x in r[1:]] and all(
      abs(sum(float(x) for x in r[1:]) - 1.0) < 1e-6 for r in rows)
  # Against itself as a run directory.
  out = io.StringIO()
  assert play_lib.main([run[0], "--against", run[0], "--games", "4"],
                       out=out) == 0
  assert "score: A 4 - 4 B" in out.getvalue()  # Greedy: mirror games.
  for argv, message in [
      ([str(tmp_path / "nope")], "no such directory"),
      ([run[0], "--against", "mcts:x"], "mcts:<simulations>"),
      ([run[0], "--games", "0"], "--games"),
  ]:
    assert play_lib.main(argv, out=io.StringIO()) == 2
    assert message in capsys.readouterr().err
  # A one-player game is scored against a random player, nothing else.
  catch_dir = tmp_path / "catch"
  make_run(catch_dir, tiny("catch"))
  for argv in ([], ["--against", "mcts:10"],
               ["--against", "random", "--model-errors", "5"]):
    assert play_lib.main([str(catch_dir)] + argv, out=io.StringIO()) == 2
    assert "one-player game" in capsys.readouterr().err
  out = io.StringIO()
  assert play_lib.main([str(catch_dir), "--against", "random", "--games",
                        "3"], out=out) == 0
  lines = dict(l.split(": ") for l in out.getvalue().splitlines()[1:])
  if float(lines["random_return"]) > 0:
    ratio = float(lines["eval_return"]) / float(lines["random_return"])
    assert lines["score over random"] == f"{ratio:.2f}x"
  else:
    assert "score over random" not in lines
  assert 0 <= float(lines["catch_rate"]) <= 1


def test_cli_ctrl_c_exits_cleanly(run):
  class Interrupting(io.StringIO):
    def readline(self, *args):
      raise KeyboardInterrupt
  out = io.StringIO()
  assert play_lib.main([run[0]], inp=Interrupting(), out=out) == 130
  assert out.getvalue().endswith("interrupted: bye.\n")


@pytest.mark.slow  # A new process compiles the search again (~15 s).
def test_cli_process_reads_stdin(run):
  """The real command: a malformed move, then end of input; no traceback."""
  proc = subprocess.run(
      [sys.executable, "-m", "agents.play", run[0], "--second"],
      input="x\n", capture_output=True, text=True, cwd=ROOT, timeout=300,
      check=False)
  assert proc.returncode == 0, proc.stderr
  assert "the agent plays" in proc.stdout
  assert "'x' is not a move" in proc.stdout
  assert proc.stdout.endswith("end of input: bye.\n")
  assert "Traceback" not in proc.stderr
