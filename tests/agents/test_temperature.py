"""Self-play's temperature (``Config.temperature``, ``--temperature``): the
schedule over the run's iterations, the check of bad values, the flag and
run.json; with the Gumbel policy T scales the Gumbel noise. (That a run's
self-play follows the schedule is checked in
``test_training.py::test_end_to_end_run_files``.)"""
import json

import jax
import numpy as np
import pytest

import envs
from agents import algorithms
from agents import config as config_lib
from agents import train_flags
from agents.training.selfplay import temperature_at
from agents.training.state import init_train_state
from tests.agents.helpers import tiny


@pytest.mark.parametrize("temps, expected", [
    # MuZero's schedule over 8 iterations: 1 for the first half, 0.5 for
    # the next quarter, 0.25 for the last (and after, on a longer run).
    ((1.0, 1.0, 0.5, 0.25), [1, 1, 1, 1, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25]),
    ((0.5,), [0.5] * 10),
    ((1.0, 0.0), [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]),
    # Stretches that do not divide the run: value i from iteration
    # ceil(i * steps / n) (i * n // steps): 0-2, 3-5, 6 on.
    ((3.0, 2.0, 1.0), [3, 3, 3, 2, 2, 2, 1, 1, 1, 1])])
def test_the_schedule_splits_the_run_into_equal_stretches(temps, expected):
  config = tiny(temperature=temps, steps=8)
  got = [float(temperature_at(config, np.int32(i))) for i in range(10)]
  assert got == expected


@pytest.mark.parametrize("temps", [(), (-0.5,), (1.0, -1.0), (True,),
                                   ("1",), [1.0]])
def test_bad_temperatures_are_refused(temps):
  with pytest.raises(ValueError, match="temperature.*numbers >= 0"):
    config_lib.validate(config_lib.Config(temperature=temps))


def test_gumbel_temperature_scales_the_gumbel_noise():
  """With the Gumbel policy, T is the scale of the root's Gumbel noise:
  at 0 the search has no randomness left (two keys, the same moves), at 1
  the keys draw different moves."""
  config = tiny(policy="gumbel", temperature=(0.5,))
  env = envs.make(config.env)
  agent = algorithms.make_agent(config, env)
  params = init_train_state(agent).params
  states = jax.vmap(env.init)(jax.random.split(jax.random.PRNGKey(1), 16))
  act = jax.jit(lambda key, t: agent.act(params, key, states,
                                         temperature=t).action)
  one, two = jax.random.PRNGKey(2), jax.random.PRNGKey(3)
  np.testing.assert_array_equal(act(one, 0.0), act(two, 0.0))
  assert np.any(np.asarray(act(one, 1.0)) != np.asarray(act(two, 1.0)))


def test_flag_number_and_run_json_make_the_same_tuple():
  parse = train_flags.build_parser().parse_args
  config = train_flags.config_from_args(parse(
      ["--env", "2048", "--temperature", "1", "1", "0.5", "0.25"]))
  assert config.temperature == (1.0, 1.0, 0.5, 0.25)
  assert train_flags.config_from_args(parse(["--env", "2048"])).temperature \
      == (1.0,)
  assert config_lib.make_config("2048", temperature=0.5).temperature == (0.5,)
  # run.json stores a list; it reads back as the same (hashable) config.
  again = config_lib.Config.from_dict(json.loads(json.dumps(
      config.to_dict())))
  assert again == config and hash(again) == hash(config)
  # An old run's run.json (no such field) reads as temperature 1.
  old = {k: v for k, v in config.to_dict().items() if k != "temperature"}
  assert config_lib.Config.from_dict(old).temperature == (1.0,)
