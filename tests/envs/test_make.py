"""envs.make: the registry of games by name."""

import envs
import pytest


def test_make_known_names():
  assert isinstance(envs.make("tictactoe"), envs.TicTacToe)
  assert isinstance(envs.make("connect4"), envs.Connect4)
  assert isinstance(envs.make("catch"), envs.Catch)
  small = envs.make("catch", rows=6, columns=3)
  assert small.observation_shape == (6, 3, 1)
  assert small.max_episode_steps == 5


def test_make_unknown_name_lists_valid_names():
  with pytest.raises(ValueError) as info:
    envs.make("chess")
  for name in ("tictactoe", "connect4", "catch", "pgx:"):
    assert name in str(info.value)
