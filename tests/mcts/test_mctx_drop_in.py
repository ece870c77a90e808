"""`mcts` is a drop-in for mctx: every public name of mctx's `__init__`
exists in `mcts`, and the installed mctx package's own test modules
(`mctx/_src/tests/*_test.py`, read at run time, never copied) pass with
`mctx` replaced by `mcts`.

Those modules also reach into mctx's internals (`from mctx._src import
policies`, ...): `MCTX_INTERNALS` maps each internal they use to the `mcts`
function with the same meaning; `NOT_RUN` lists the tests that check mctx
behaviour we deliberately differ from, with why.
"""
import collections.abc
import contextlib
import glob
import os
import sys
import types
import typing
import unittest

import mctx
import pytest

import mcts
from mcts import policies
from mcts import qtransforms
from mcts import seq_halving

MCTX_DIR = os.path.dirname(mctx.__file__)
MCTX_TEST_MODULES = sorted(
    os.path.basename(path)[:-len(".py")]
    for path in glob.glob(os.path.join(MCTX_DIR, "_src", "tests", "*.py"))
    if not os.path.basename(path).startswith("_"))


def _mixed_value(raw_value, qvalues, visit_counts, prior_probs):
  """mctx's `_compute_mixed_value(raw_value [], qvalues [A], visit_counts
  [A], prior_probs [A])`: ours takes the children's statistics."""
  return qtransforms.mixed_value(
      raw_value, qtransforms.children_stats(qvalues, visit_counts,
                                            prior_probs))


# mctx internal -> ours, by `mctx._src` module.
MCTX_INTERNALS = {
    "policies": dict(_apply_temperature=policies.apply_temperature,
                     _mask_invalid_actions=policies.mask_invalid_actions),
    "qtransforms": dict(_compute_mixed_value=_mixed_value),
    "seq_halving": dict(get_sequence_of_considered_visits=(
        seq_halving.considered_visits_sequence)),
}

# Tests of mctx's that `mcts` does not pass by design: test id -> why.
NOT_RUN = {}


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


@contextlib.contextmanager
def _mctx_is_mcts():
  """Within: `import mctx` gives `mcts`, and `mctx._src.<module>` a module
  of our counterparts of its internals (`MCTX_INTERNALS`); restored after."""
  saved = {name: module for name, module in sys.modules.items()
           if name == "mctx" or name.startswith("mctx.")}
  for name in saved:
    del sys.modules[name]
  src = types.ModuleType("mctx._src")
  sys.modules["mctx"] = mcts
  sys.modules["mctx._src"] = src
  for name, members in MCTX_INTERNALS.items():
    module = types.ModuleType(f"mctx._src.{name}")
    module.__dict__.update(members)
    setattr(src, name, module)
    sys.modules[module.__name__] = module
  try:
    yield
  finally:
    for name in [n for n in sys.modules
                 if n == "mctx" or n.startswith("mctx.")]:
      del sys.modules[name]
    sys.modules.update(saved)


def _load_test_module(name: str) -> types.ModuleType:
  """mctx's test module `name`, executed from its source with `mctx` as
  `mcts`."""
  path = os.path.join(MCTX_DIR, "_src", "tests", f"{name}.py")
  with open(path) as f:
    source = f.read()
  module = types.ModuleType(f"mctx_test_against_mcts.{name}")
  module.__file__ = path
  with _mctx_is_mcts():
    exec(compile(source, path, "exec"), module.__dict__)  # pylint: disable=exec-used
  return module


# tree_test's golden trees take 73 s on a loaded 2-core machine.
@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.slow) if n == "tree_test" else n
    for n in MCTX_TEST_MODULES])
def test_mctx_test_module_passes_against_mcts(name, monkeypatch):
  # tree_test reads its golden trees by paths relative to mctx's folder.
  monkeypatch.chdir(MCTX_DIR)
  module = _load_test_module(name)
  suite = unittest.TestLoader().loadTestsFromModule(module)
  ran, problems = [], []
  for test in _flatten(suite):
    if test.id().split(".", 1)[1] in NOT_RUN:
      continue
    result = unittest.TestResult()
    with _mctx_is_mcts():
      test.run(result)
    ran.append(test.id())
    problems += [(t.id(), trace[-3000:])
                 for t, trace in result.failures + result.errors]
  assert ran, f"{name}: no test found"
  assert not problems, "\n\n".join(f"{i}:\n{t}" for i, t in problems)


def _flatten(suite):
  for test in suite:
    if isinstance(test, unittest.TestSuite):
      yield from _flatten(test)
    else:
      yield test
