"""MuZero Reanalyse (agents/training/reanalyse.py, batch.make_batch): fresh
targets against a direct search, the row split, fraction 0 unchanged,
validation, sharded train steps; one slow learning test."""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from agents import algorithms
from agents import config as config_lib
from agents import train as train_lib
from agents import train_flags
from agents.runs import run_dir
from agents.training import batch as batch_lib
from agents.training import reanalyse
from agents.training import replay
from agents.training import targets as targets_lib
from agents.training.state import init_train_state
from agents.training.step import jitted_train_step, make_train_step
from tests.agents.helpers import params_equal, tiny


def _run(config, n, step=None):
  """``(state, metrics of the last iteration)`` after ``n`` iterations."""
  agent = algorithms.make_agent(config, envs.make(config.env))
  state = init_train_state(agent)
  step = step or jitted_train_step(agent)
  for _ in range(n):
    state, metrics = step(state)
  return state, metrics


@pytest.fixture(scope="module")
def sharded_run():
  """Two iterations of tiny tic-tac-toe MuZero with reanalyse 0.25 on two
  shards (mesh=None): 2 of each shard's 8 rows reanalysed."""
  config = tiny(num_shards=2, reanalyse_fraction=0.25)
  return config, _run(config, 2)


# ------------------------------------------------------------ train step
def test_sharded_train_step_with_reanalyse_is_finite(sharded_run):
  config, (state, metrics) = sharded_run
  assert config_lib.reanalyse_rows(config) == 2
  assert bool(metrics["learning"]) and bool(metrics["finite"])
  assert float(metrics["reanalyse_fraction"]) == 0.25
  for name in ("loss", "reanalyse_value_change", "reanalyse_policy_tv"):
    assert np.isfinite(float(metrics[name])), name
  assert 0.0 <= float(metrics["reanalyse_policy_tv"]) <= 1.0
  assert state.buffer.data["legal"].shape == (
      config.replay_capacity, config.num_envs, 9)
  # Stored legal masks are the positions' own: some move is always legal.
  written = state.buffer.data["legal"][:int(state.buffer.count)]
  assert bool(jnp.all(jnp.any(written, axis=-1)))


# ---------------------------------------------------------- ground truth
def _expected(config, env, agent, buffer, params, key, rows):
  """The reanalysed targets of the first ``rows`` rows of the batch drawn
  with ``key``, computed directly: one search (``agent.act``, key
  ``reanalyse.search_key(key)``) at the stored observations and legal
  masks, then the n-step values by a plain loop. ``(policy [R, K+1, A],
  value [R, K+1], fresh root values [R, 2(K+1)], stored targets [B])``."""
  K, n = config_lib.unroll_steps(config), targets_lib.td_steps(config, env)
  length = targets_lib.window_length(config, env)
  d = -1.0 if env.num_players == 2 else config.discount
  start, env_idx = replay.sample(buffer, key, config.batch_size, length)
  window = replay.window(buffer, start, env_idx, length)
  stored = targets_lib.compute_targets(config, env, window)
  boot_idx = np.asarray(targets_lib.bootstrap_index(config, env, window))[:rows]
  data = jax.tree.map(np.asarray, buffer.data)
  start, env_idx = np.asarray(start)[:rows], np.asarray(env_idx)[:rows]
  where = np.tile(np.arange(K + 1), (rows, 1))
  boots = targets_lib.can_bootstrap(config, env)
  if boots:
    where = np.concatenate([where, boot_idx], 1)
  cells = (start[:, None] + where) % buffer.capacity
  obs = data["observation"][cells, env_idx[:, None]]
  legal = data["legal"][cells, env_idx[:, None]]
  m = where.shape[1]
  out = jax.jit(agent.act)(params, reanalyse.search_key(key),
                           reanalyse.StoredPosition(
                               obs.reshape((rows * m,) + obs.shape[2:]),
                               legal.reshape(rows * m, -1)))
  policy = np.asarray(out.action_weights).reshape(rows, m, -1)[:, :K + 1]
  root_value = np.asarray(out.search_tree.summary().value).reshape(rows, m)
  reward = np.asarray(window["reward"])
  done = np.asarray(window["done"])
  value = np.zeros((rows, K + 1), np.float32)
  for b in range(rows):
    ended = False
    for k in range(K + 1):
      if ended:
        break  # Absorbing: target 0.
      z, finished = 0.0, False
      for i in range(boot_idx[b, k] - k):
        z += d ** i * reward[b, k + i]
        if done[b, k + i]:
          finished = True
          break
      if not finished:
        assert boots, "a bootstrap that can_bootstrap ruled out"
        z += d ** (boot_idx[b, k] - k) * root_value[b, K + 1 + k]
      value[b, k] = z
      ended = bool(done[b, k])
  return policy, value, root_value, stored


def test_can_bootstrap():
  catch = envs.make("catch")
  # n = catch's longest episode, no exploration: outcomes only.
  assert not targets_lib.can_bootstrap(config_lib.make_config("catch"), catch)
  assert targets_lib.can_bootstrap(
      config_lib.make_config("catch", td_steps=3), catch)
  # Tic-tac-toe's exploration moves cut the returns short.
  assert targets_lib.can_bootstrap(config_lib.make_config("tictactoe"),
                               envs.make("tictactoe"))


# Slow ones only for their time (12 s, 40 s more on the loaded 2-core
# machine). Catch with n = its longest episode searches the unroll
# positions only (can_bootstrap False).
# The default case mixes the fresh root values into the value targets
# (root_value_mix, agents/training/targets.py).
@pytest.mark.parametrize("env_name,fraction,mix", [
    ("tictactoe", 1.0, 0.5),
    pytest.param("tictactoe", 0.5, 0.0, marks=pytest.mark.slow),
    pytest.param("catch", 1.0, 0.0, marks=pytest.mark.slow)])
def test_reanalysed_targets_equal_a_direct_search(sharded_run, env_name,
                                                  fraction, mix):
  config, (state, _) = sharded_run
  if env_name == "catch":
    config = tiny("catch", policy="muzero", td_steps=None,
                  reanalyse_fraction=1.0)
    state, _ = _run(config, 2)
  config = dataclasses.replace(config, num_shards=1,
                               reanalyse_fraction=fraction,
                               root_value_mix=mix)
  rows = config_lib.reanalyse_rows(config)
  assert rows == {1.0: 16, 0.5: 8}[fraction]
  env = envs.make(config.env)
  agent = algorithms.make_agent(config, env)
  key = jax.random.PRNGKey(7)
  batch = jax.jit(functools.partial(
      batch_lib.make_batch, config, env, agent=agent, rows=rows))(
          state.buffer, key, params=state.params)
  policy, value, root_value, stored = _expected(
      config, env, agent, state.buffer, state.params, key, rows)
  targets = jax.tree.map(np.asarray, batch["targets"])
  alive = np.asarray(stored["alive"])
  # Policy targets: the fresh search's action_weights (where they count).
  np.testing.assert_allclose(targets["policy"][:rows], policy, atol=1e-6)
  # Value targets bootstrap from the fresh root values, and mix in those
  # of their own steps.
  K = config_lib.unroll_steps(config)
  value = np.where(alive[:rows], (1 - mix) * value
                   + mix * root_value[:, :K + 1], 0.0)
  np.testing.assert_allclose(targets["value"][:rows], value, atol=1e-5)
  assert not np.allclose(root_value, 0.0)
  if env_name == "catch":   # Outcomes: the value targets do not change.
    assert root_value.shape[1] == config_lib.unroll_steps(config) + 1
    np.testing.assert_array_equal(targets["value"], stored["value"])
  # The other rows keep the stored targets exactly; reward and alive are
  # never changed.
  for name in ("policy", "value"):
    np.testing.assert_array_equal(targets[name][rows:],
                                  np.asarray(stored[name])[rows:])
  for name in ("reward", "alive"):
    np.testing.assert_array_equal(targets[name], np.asarray(stored[name]))
  assert alive[:rows].any() and not np.array_equal(
      targets["policy"][:rows][alive[:rows]],
      np.asarray(stored["policy"])[:rows][alive[:rows]])
  changes = batch["reanalyse"]
  tv = 0.5 * np.abs(policy - np.asarray(stored["policy"])[:rows]).sum(-1)
  np.testing.assert_allclose(float(changes["reanalyse_policy_tv"]),
                             tv[alive[:rows]].mean(), rtol=1e-4)


# ------------------------------------------------------------ fraction 0
@pytest.mark.slow  # Two compiles of the train step: ~40 s here.
def test_fraction_zero_gives_bitwise_the_same_parameters():
  """An explicit 0 builds today's program: same replay layout, same
  metrics, bitwise the same parameters after 2 iterations as a config
  without the field (checked once against the commit before reanalyse)."""
  unset = tiny()
  zero = tiny(reanalyse_fraction=0.0)
  env = envs.make("tictactoe")
  a, metrics = _run(unset, 2)
  b, _ = _run(zero, 2, step=jax.jit(make_train_step(
      algorithms.make_agent(zero, env))))
  assert "legal" not in a.buffer.data
  assert not any(k.startswith("reanalyse") for k in metrics)
  assert params_equal(a.params, b.params)
  assert params_equal(a, b)


# ------------------------------------------------------------ validation
@pytest.mark.parametrize("fraction", [-0.1, 1.5, float("nan")])
def test_fraction_out_of_range_is_refused(fraction):
  with pytest.raises(ValueError, match="reanalyse_fraction.*in \\[0, 1\\]"):
    config_lib.make_config("catch", reanalyse_fraction=fraction)


@pytest.mark.parametrize("env_name,algo", [
    ("tictactoe", "alphazero"), ("2048", "stochastic_muzero")])
def test_reanalyse_needs_muzero(env_name, algo):
  with pytest.raises(ValueError, match="reanalyse_fraction.*muzero"):
    config_lib.make_config(env_name, algo=algo, reanalyse_fraction=0.25)
  assert config_lib.make_config(env_name, algo=algo,
                                reanalyse_fraction=0.0).algo == algo


def test_fraction_rounding_to_no_rows_is_refused():
  c = config_lib.make_config("catch", batch_size=16, num_shards=2,
                             reanalyse_fraction=0.0625)   # 0.5 row: 1.
  assert config_lib.reanalyse_rows(c) == 1
  with pytest.raises(ValueError, match="reanalyse_fraction.*0 reanalysed"):
    config_lib.make_config("catch", batch_size=16, num_shards=2,
                           reanalyse_fraction=0.05)


def test_cli_flag(tmp_path, capsys):
  parse = train_flags.build_parser().parse_args
  c = train_flags.config_from_args(parse(["--env", "catch", "--reanalyse",
                                        "0.25"]))
  assert c.reanalyse_fraction == 0.25
  assert train_flags.config_from_args(parse([])).reanalyse_fraction == 0.0
  assert train_lib.main(["--reanalyse", "1.5", "--out",
                         str(tmp_path / "a")]) == 2
  assert "reanalyse_fraction (--reanalyse)" in capsys.readouterr().err
  assert train_lib.main(["--algo", "alphazero", "--reanalyse", "0.5",
                         "--out", str(tmp_path / "b")]) == 2
  assert "needs algo='muzero'" in capsys.readouterr().err
  # A run's flag: fixed on resume (it is in run.json).
  assert train_lib.main(["--resume", str(tmp_path / "c"),
                         "--reanalyse", "0.5"]) == 2
  assert "--reanalyse cannot change" in capsys.readouterr().err


# --------------------------------------------------------------- learning
@pytest.mark.slow
def test_catch_muzero_with_reanalyse_learns(tmp_path):
  """The bar of test_training.py::test_catch_learns, with a quarter of every
  batch reanalysed."""
  config = config_lib.make_config("catch", reanalyse_fraction=0.25)
  run_dir.prepare_new_run(str(tmp_path / "r"), config)
  out = train_lib.train(config, str(tmp_path / "r"), progress=False,
                        quick_eval=False, plot=False, max_minutes=10)
  assert out["metrics"][-1]["reanalyse_fraction"] == 0.25
  assert out["final_eval"]["catch_rate"] >= 0.95
