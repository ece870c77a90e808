"""Fixtures of the agents tests."""
import pytest

from tests.agents.helpers import make_run, tiny


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """``(run directory, params)`` of a tiny tic-tac-toe run (untrained)."""
  out = tmp_path_factory.mktemp("runs") / "ttt"
  state = make_run(out, tiny("tictactoe"))
  return str(out), state.params
