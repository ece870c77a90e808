"""Tests of agents/train.py, the command line: bad input is refused with a
clear message and touches nothing; the flags make the config; the help
names every game, algorithm and default; no abbreviated flags (train and
play)."""
import os

import pytest

import envs
from agents import algorithms
from agents import config as config_lib
from agents import play as play_lib
from agents import train as train_lib
from agents import train_flags
from agents.runs import checkpoints
from agents.runs import run_dir
from agents.training.state import init_train_state
from tests.agents.helpers import tiny


def _corrupt(path):
  data = bytearray(open(path, "rb").read())
  mid = len(data) // 2
  data[mid:mid + 64] = bytes(64)
  open(path, "wb").write(bytes(data))


def _main(argv, capsys):
  code = train_lib.main(argv)
  return code, capsys.readouterr().err


def test_cli_unknown_env(tmp_path, capsys):
  code, err = _main(["--env", "chess3d", "--out", str(tmp_path / "r")],
                    capsys)
  assert code == 2
  assert "Unknown environment 'chess3d'" in err and "tictactoe" in err
  assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("sims", ["0", "-3"])
def test_cli_non_positive_simulations(tmp_path, capsys, sims):
  code, err = _main(["--simulations", sims, "--out", str(tmp_path / "r")],
                    capsys)
  assert code == 2 and "--simulations must be a positive integer" in err
  assert not (tmp_path / "r").exists()


def test_cli_replay_too_short_for_a_window(tmp_path, capsys):
  code, err = _main(["--env", "connect4", "--replay-capacity", "16",
                     "--out", str(tmp_path / "r")], capsys)
  assert code == 2
  assert err.startswith("error: replay_capacity (--replay-capacity) 16 "
                        "must be at least the replayed window (43 steps")
  assert "Traceback" not in err and not (tmp_path / "r").exists()


def test_cli_refuses_foreign_out_dir(tmp_path, capsys):
  out = tmp_path / "precious"
  out.mkdir()
  (out / "thesis.tex").write_text("do not lose me")
  code, err = _main(["--out", str(out), "--steps", "1"], capsys)
  assert code == 2 and "refusing to overwrite" in err
  assert sorted(os.listdir(out)) == ["thesis.tex"]
  assert (out / "thesis.tex").read_text() == "do not lose me"
  # A file given as --out is refused too.
  code, err = _main(["--out", str(out / "thesis.tex")], capsys)
  assert code == 2 and "not a directory" in err


def test_cli_refuses_existing_run_without_resume(tmp_path, capsys):
  out = tmp_path / "run"
  run_dir.prepare_new_run(str(out), tiny("catch"))
  run_json = (out / run_dir.RUN_FILE).read_text()
  code, err = _main(["--env", "catch", "--out", str(out)], capsys)
  assert code == 2 and "--resume" in err
  assert (out / run_dir.RUN_FILE).read_text() == run_json
  # --resume cannot change what defines the run.
  code, err = _main(["--resume", str(out), "--simulations", "8"], capsys)
  assert code == 2 and "cannot change" in err
  # --resume of something that is not a run.
  code, err = _main(["--resume", str(tmp_path / "nothing")], capsys)
  assert code == 2 and "no such directory" in err


def test_cli_corrupted_checkpoint_is_refused_and_kept(tmp_path, capsys):
  out = tmp_path / "run"
  config = tiny("catch")
  run_dir.prepare_new_run(str(out), config)
  state = init_train_state(algorithms.make_agent(config, envs.make("catch")))
  ck_dir = out / run_dir.CHECKPOINT_DIR
  checkpoints.save(str(ck_dir), state, dict(iteration=0))
  files = [os.path.join(r, n) for r, _, ns in os.walk(ck_dir) for n in ns]
  _corrupt(max(files, key=os.path.getsize))
  (out / run_dir.METRICS_FILE).write_text('{"iteration": 1}\n')
  def contents():
    return {os.path.join(r, n): open(os.path.join(r, n), "rb").read()
            for r, _, ns in os.walk(out) for n in ns if n != ".lock"}
  before = contents()
  code, err = _main(["--resume", str(out)], capsys)
  assert code == 2 and "corrupted" in err and str(ck_dir) in err
  assert contents() == before


def test_cli_arguments_make_the_config():
  args = train_flags.build_parser().parse_args([
      "--env", "catch", "--algo", "alphazero", "--policy", "muzero",
      "--simulations", "7", "--seed", "3", "--steps", "11", "--envs", "9",
      "--batch-size", "5", "--lr", "0.01", "--updates-per-iter", "4",
      "--replay-capacity", "40"])
  c = train_flags.config_from_args(args)
  assert (c.env, c.algo, c.policy, c.num_simulations, c.seed, c.steps,
          c.num_envs, c.batch_size, c.learning_rate, c.updates_per_iter,
          c.replay_capacity) == (
              "catch", "alphazero", "muzero", 7, 3, 11, 9, 5, 0.01, 4, 40)
  # No arguments: the demo, MuZero (learned model, Gumbel) on tic-tac-toe.
  c = train_flags.config_from_args(train_flags.build_parser().parse_args([]))
  assert (c.env, c.algo, c.policy) == ("tictactoe", "muzero", "gumbel")


# ------------------------------------------------------------- the help
def test_help_names_every_game_and_algorithm_and_every_default(capsys):
  with pytest.raises(SystemExit) as e:
    train_flags.build_parser().parse_args(["--help"])
  assert e.value.code == 0
  text = " ".join(capsys.readouterr().out.split())  # Unwrapped.
  for name in envs.VALID_NAMES + config_lib.ALGOS + config_lib.POLICIES:
    assert name in text, name
  assert "2048" in text and "pgx:<env_id>" in text
  assert "stochastic_muzero" in text
  for action in train_flags.build_parser()._actions:  # pylint: disable=protected-access
    if action.dest != "help":
      assert "default" in action.help, action.option_strings
  # Defaults that depend on the game name every game.
  steps = train_flags.game_defaults("steps")
  for name in envs.VALID_NAMES:
    assert f"{name} {config_lib.make_config(name).steps}" in steps
  assert "(default 16; connect4 32, pgx:<env_id> 32)" in text
  assert "(default 0.002)" in text and "(default 120)" in text


@pytest.mark.parametrize("parser,argv,flag", [
    (train_flags.build_parser, ["--step", "3"], "--step"),
    (train_flags.build_parser, ["--sim", "3"], "--sim"),
    (play_lib.build_parser, ["RUN", "--game", "3"], "--game"),
    (play_lib.build_parser, ["RUN", "--again", "random"], "--again")])
def test_abbreviated_flags_are_refused(capsys, parser, argv, flag):
  """`--step 3` is an error naming it, not `--steps 3` (which could start a
  long run in ./runs/)."""
  with pytest.raises(SystemExit) as e:
    parser().parse_args(argv)
  assert e.value.code == 2
  assert f"unrecognized arguments: {flag}" in capsys.readouterr().err


def test_resume_command_repeats_the_settings_run_json_does_not_keep():
  parse = train_flags.build_parser().parse_args
  assert train_flags.resume_command(parse([]), "runs/a b") == (
      "python -m agents.train --resume 'runs/a b'")
  args = parse(["--steps", "9", "--eval-mcts-sims", "0", "--checkpoint-every",
                "30", "--no-progress", "--devices", "2", "--lr", "0.1"])
  assert train_flags.resume_command(args, "r") == (
      "python -m agents.train --resume r --eval-mcts-sims 0 "
      "--checkpoint-every 30 --no-progress --devices 2")
