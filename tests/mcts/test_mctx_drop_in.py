"""`mcts` is a drop-in for mctx: every public name of mctx's `__init__`
exists in `mcts`."""
import collections.abc
import typing

import mctx
import pytest

import mcts


def test_every_public_mctx_name_is_in_mcts():
  names = [n for n in dir(mctx) if not n.startswith("_")]
  assert len(names) >= 20
  assert [n for n in names if not hasattr(mcts, n)] == []


@pytest.mark.parametrize("name", ["RecurrentFn", "LoopFn",
                                  "RootActionSelectionFn",
                                  "InteriorActionSelectionFn"])
def test_function_type_aliases_take_the_same_arguments(name):
  ours, theirs = getattr(mcts, name), getattr(mctx, name)
  assert typing.get_origin(ours) is typing.get_origin(theirs) is (
      collections.abc.Callable)
  assert len(typing.get_args(ours)[0]) == len(typing.get_args(theirs)[0])


def test_recurrent_state_is_any_pytree():
  # mctx's is chex.ArrayTree; ours admits it (and any pytree).
  assert mcts.RecurrentState is typing.Any
