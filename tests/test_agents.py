"""Tests of agents/: value transform, replay, targets, training smoke tests,
checkpoints and resume, command-line errors. Fast by default; the
learning-to-target tests are marked slow."""
import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("haiku")
pytest.importorskip("optax")

import envs  # pylint: disable=g-import-not-at-top
from agents import checkpoint as ckpt
from agents import config as config_lib
from agents import evaluate as evaluate_lib
from agents import learner
from agents import replay
from agents import sharded_checkpoint as sharded_ckpt
from agents import train as train_lib
from agents.value_transform import Support, h, h_inv
from tests import dist_worker


# Tiny configs: the smoke tests check plumbing, not learning.
def tiny(env_name, **kw):
  return dist_worker.tiny_config(dict(kw, env=env_name))


# --------------------------------------------------------- value transform
def test_value_transform_round_trip():
  x = jnp.concatenate([jnp.linspace(-1000.0, 1000.0, 20001),
                       jnp.array([0.0, 1e-6, -1e-6, 0.5, -0.5])])
  np.testing.assert_allclose(h_inv(h(x)), x, rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(h(h_inv(x)), x, rtol=1e-5, atol=1e-4)
  assert float(h(jnp.float32(0.0))) == 0.0
  # h is odd and increasing.
  np.testing.assert_allclose(h(-x), -h(x), rtol=1e-6)
  assert bool(jnp.all(jnp.diff(h(jnp.linspace(-50, 50, 1001))) > 0))


@pytest.mark.parametrize("lo,hi,bins", [(-1.0, 1.0, 21), (-10.0, 300.0, 51),
                                        (0.0, 1.0, 2)])
def test_two_hot(lo, hi, bins):
  s = Support(lo, hi, bins)
  x = jnp.linspace(lo, hi, 997)
  p = s.scalar_to_two_hot(x)
  assert p.shape == (997, bins)
  np.testing.assert_allclose(jnp.sum(p, -1), 1.0, atol=1e-6)
  assert bool(jnp.all(p >= 0))
  nonzero = p > 1e-7
  assert int(jnp.max(jnp.sum(nonzero, -1))) <= 2
  # The (at most two) non-zero bins are adjacent.
  idx = jnp.where(nonzero, jnp.arange(bins), -1)
  first = jnp.argmax(nonzero, -1)
  assert bool(jnp.all(jnp.max(idx, -1) - first <= 1))
  # The expected support point is h(x), so the round trip is exact.
  np.testing.assert_allclose(jnp.sum(p * s.points, -1), h(x), atol=1e-5)
  np.testing.assert_allclose(s.probs_to_scalar(p), x,
                             atol=1e-4 * max(1.0, abs(hi)))
  # Out of range values are clipped; a support point is a one-hot.
  np.testing.assert_allclose(s.probs_to_scalar(
      s.scalar_to_two_hot(jnp.array([lo - 5.0, hi + 5.0]))), [lo, hi],
                             atol=1e-3 * max(1.0, abs(hi)))
  np.testing.assert_allclose(s.scalar_to_two_hot(jnp.float32(hi)),
                             jax.nn.one_hot(bins - 1, bins), atol=1e-5)


# ------------------------------------------------------------------- replay
def test_replay_ring_buffer_wraps_around():
  example = dict(t=jnp.int32(0), v=jnp.zeros(2, jnp.float32))
  buf = replay.init(example, capacity=7, num_envs=3)
  assert buf.capacity == 7 and buf.num_envs == 3
  assert int(replay.num_valid_starts(buf, 4)) == 0
  written = 0
  add = jax.jit(replay.add)
  for _ in range(6):  # 6 chunks of 3 steps: wraps around twice.
    ts = written + jnp.arange(3)
    chunk = dict(t=jnp.tile(ts[:, None], (1, 3)) * 10 + jnp.arange(3),
                 v=jnp.zeros((3, 3, 2)) + ts[:, None, None])
    buf = add(buf, chunk)
    written += 3
    assert int(buf.count) == written
    # Row r holds absolute time step t with t % capacity == r, latest ones.
    for t in range(max(0, written - 7), written):
      np.testing.assert_array_equal(buf.data["t"][t % 7],
                                    t * 10 + np.arange(3))
    valid = int(replay.num_valid_starts(buf, 4))
    assert valid == min(written, 7) - 4 + 1 if written >= 4 else valid == 0
  # Sampled windows are complete, consecutive and from the right column.
  start, env = replay.sample(buf, jax.random.PRNGKey(0), 500, 4)
  assert int(start.min()) >= written - 7
  assert int(start.max()) <= written - 4
  assert set(np.unique(np.asarray(start))) == set(
      range(written - 7, written - 4 + 1))
  w = replay.window(buf, start, env, 4)
  expected = (start[:, None] + jnp.arange(4)) * 10 + env[:, None]
  np.testing.assert_array_equal(w["t"], expected)
  np.testing.assert_array_equal(w["v"][..., 0], start[:, None] +
                                jnp.arange(4))
  with pytest.raises(ValueError, match="capacity"):
    replay.sample(buf, jax.random.PRNGKey(0), 4, 8)


def test_value_targets_two_player():
  """n-step-to-the-end targets alternate sign between plies and stop at the
  episode end; unroll steps past the end are absorbing."""
  config = tiny("tictactoe", unroll_steps=3, td_steps=4)
  env = envs.make("tictactoe")
  targets = jax.jit(lambda w: learner.compute_targets(config, env, w))
  # One window of L = K + n + 1 = 8 steps: an episode ending at step 2 with
  # a win for the mover of step 2, then a new episode.
  done = jnp.array([[0, 0, 1, 0, 0, 0, 0, 0]], bool)
  reward = jnp.array([[0, 0, 1, 0, 0, 0, 0, -1]], jnp.float32)
  value = jnp.array([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]])
  policy = jnp.ones((1, 8, 9)) / 9
  out = targets(dict(
      done=done, reward=reward, value=value, policy=policy))
  # Step 0: mover of step 2 is the same player -> +1; step 1: -1; step 2: +1.
  np.testing.assert_allclose(out["value"][0], [1.0, -1.0, 1.0, 0.0])
  np.testing.assert_array_equal(out["alive"][0], [True, True, True, False])
  # Rewards into unrolled states 1..3 = r_t, r_{t+1}, r_{t+2}.
  np.testing.assert_allclose(out["reward"][0, 1:], [0.0, 0.0, 1.0])
  # Bootstrapping: no episode end within n steps -> d^n * value[t+n].
  done = jnp.zeros((1, 8), bool)
  out = targets(dict(
      done=done, reward=jnp.zeros((1, 8)), value=value, policy=policy))
  np.testing.assert_allclose(out["value"][0], value[0, 4:8], rtol=1e-6)
  # A random exploration move at step 2: steps 0 and 1 bootstrap from the
  # search value at step 2 (from their own point of view), step 2 itself
  # uses the outcome (its own move is not "after" it).
  explored = jnp.array([[0, 0, 1, 0, 0, 0, 0, 0]], bool)
  done = jnp.array([[0, 0, 0, 1, 0, 0, 0, 0]], bool)
  reward = jnp.array([[0, 0, 0, 1, 0, 0, 0, 0]], jnp.float32)
  out = targets(dict(
      done=done, reward=reward, value=value, policy=policy,
      explored=explored))
  np.testing.assert_allclose(out["value"][0], [0.3, -0.3, -1.0, 1.0],
                             rtol=1e-6)


# ---------------------------------------------------- training smoke tests
def _run_iterations(config, n):
  env = envs.make(config.env)
  agent = learner.make_agent(config, env)
  state = learner.init_train_state(config, env, agent)
  step = learner.jitted_train_step(config)
  losses = []
  for _ in range(n):
    state, metrics = step(state)
    losses.append(float(metrics["loss"]))
  return state, losses


SMOKE = {"tictactoe": dict(algo="muzero", policy="gumbel"),
         "catch": dict(algo="muzero", policy="muzero"),
         "connect4": dict(algo="alphazero", policy="gumbel")}


# tictactoe's MuZero with Gumbel also trains in test_resume_is_exact; in
# the default run Connect Four's AlphaZero is the representative.
@pytest.mark.parametrize("env_name", [
    n if n == "connect4" else pytest.param(n, marks=pytest.mark.slow)
    for n in sorted(SMOKE)])
def test_training_smoke_loss_goes_down(env_name):
  config = tiny(env_name, **SMOKE[env_name])
  state, losses = _run_iterations(config, 5)
  # 8 self-play steps per iteration >= the window K + n + 1 = 7: every
  # iteration learns, so every loss is finite.
  assert all(np.isfinite(losses)), losses
  assert losses[-1] < losses[0], losses
  assert int(state.iteration) == 5
  assert int(state.buffer.count) == 5 * config.selfplay_steps
  assert all(bool(jnp.all(jnp.isfinite(x)))
             for x in jax.tree_util.tree_leaves(state.params))


# ------------------------------------------------ checkpoints and resume
def _params_equal(a, b):
  la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
  return len(la) == len(lb) and all(
      np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))


def _quiet_train(config, out, **kw):
  return train_lib.train(config, str(out), progress=False, final_eval=False,
                         quick_eval=False, plot=False, log=lambda *_: None,
                         **kw)


def test_resume_is_exact(tmp_path):
  config = tiny("tictactoe", steps=4)
  straight = tmp_path / "straight"
  train_lib.prepare_new_run(str(straight), config)
  full = _quiet_train(config, straight)
  half_dir = tmp_path / "half"
  train_lib.prepare_new_run(str(half_dir), config)
  half = _quiet_train(config, half_dir, stop_at=2)  # As if killed at 2.
  assert half["iteration"] == 2
  assert not _params_equal(half["params"], full["params"])
  resumed = _quiet_train(config, half_dir, resume=True)
  assert resumed["iteration"] == 4
  assert _params_equal(resumed["params"], full["params"])
  # The whole state (optimizer, replay, actors, key) matches too.
  assert _params_equal(resumed["state"], full["state"])
  rows = [json.loads(l) for l in open(half_dir / train_lib.METRICS_FILE)]
  assert [r["iteration"] for r in rows] == [1, 2, 3, 4]


def test_checkpoint_roundtrip_and_atomicity(tmp_path, monkeypatch):
  state = dict(a=jnp.arange(5, dtype=jnp.float32), b=(jnp.ones((2, 3), bool),
               jax.random.PRNGKey(3)), c=jnp.int32(7))
  path = str(tmp_path / "ck.npz")
  ckpt.save(path, state, dict(iteration=1))
  loaded, meta = ckpt.load(path, state)
  assert meta == dict(iteration=1)
  assert _params_equal(loaded, state)
  before = open(path, "rb").read()

  # A crash in the middle of writing leaves the old checkpoint intact and
  # no temporary file behind.
  def boom(f, **kw):
    f.write(b"partial garbage")
    raise OSError("disk full")
  monkeypatch.setattr(np, "savez", boom)
  with pytest.raises(OSError, match="disk full"):
    ckpt.save(path, dict(state, c=jnp.int32(8)), dict(iteration=2))
  monkeypatch.undo()
  assert open(path, "rb").read() == before
  assert sorted(os.listdir(tmp_path)) == ["ck.npz"]
  # Mismatched template.
  with pytest.raises(ckpt.CheckpointError, match="expected"):
    ckpt.load(path, dict(state, a=jnp.arange(6, dtype=jnp.float32)))


def _corrupt(path):
  data = bytearray(open(path, "rb").read())
  mid = len(data) // 2
  data[mid:mid + 64] = bytes(64)
  open(path, "wb").write(bytes(data))


def test_corrupted_checkpoint_is_refused(tmp_path):
  state = dict(a=jnp.arange(1000, dtype=jnp.float32))
  path = str(tmp_path / "ck.npz")
  ckpt.save(path, state, {})
  _corrupt(path)
  with pytest.raises(ckpt.CheckpointError, match="corrupted"):
    ckpt.load(path, state)
  open(path, "wb").write(b"not a zip file at all")
  with pytest.raises(ckpt.CheckpointError, match="corrupted"):
    ckpt.load(path, state)


# ----------------------------------------------------------- bad input
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
  train_lib.prepare_new_run(str(out), tiny("catch"))
  run_json = (out / train_lib.RUN_FILE).read_text()
  code, err = _main(["--env", "catch", "--out", str(out)], capsys)
  assert code == 2 and "--resume" in err
  assert (out / train_lib.RUN_FILE).read_text() == run_json
  # --resume cannot change what defines the run.
  code, err = _main(["--resume", str(out), "--simulations", "8"], capsys)
  assert code == 2 and "cannot change" in err
  # --resume of something that is not a run.
  code, err = _main(["--resume", str(tmp_path / "nothing")], capsys)
  assert code == 2 and "no such directory" in err


def test_cli_corrupted_checkpoint_is_refused_and_kept(tmp_path, capsys):
  out = tmp_path / "run"
  config = tiny("catch")
  train_lib.prepare_new_run(str(out), config)
  env = envs.make("catch")
  state = learner.init_train_state(config, env,
                                   learner.make_agent(config, env))
  ck_dir = out / train_lib.CHECKPOINT_DIR
  sharded_ckpt.save(str(ck_dir), state, dict(iteration=0))
  files = [os.path.join(r, n) for r, _, ns in os.walk(ck_dir) for n in ns]
  _corrupt(max(files, key=os.path.getsize))
  (out / train_lib.METRICS_FILE).write_text('{"iteration": 1}\n')
  def contents():
    return {os.path.join(r, n): open(os.path.join(r, n), "rb").read()
            for r, _, ns in os.walk(out) for n in ns if n != ".lock"}
  before = contents()
  code, err = _main(["--resume", str(out)], capsys)
  assert code == 2 and "corrupted" in err and str(ck_dir) in err
  assert contents() == before


def test_cli_arguments_make_the_config():
  args = train_lib.build_parser().parse_args([
      "--env", "catch", "--algo", "alphazero", "--policy", "muzero",
      "--simulations", "7", "--seed", "3", "--steps", "11", "--envs", "9",
      "--batch-size", "5", "--lr", "0.01", "--updates-per-iter", "4",
      "--replay-capacity", "40"])
  c = train_lib.config_from_args(args)
  assert (c.env, c.algo, c.policy, c.num_simulations, c.seed, c.steps,
          c.num_envs, c.batch_size, c.learning_rate, c.updates_per_iter,
          c.replay_capacity) == (
              "catch", "alphazero", "muzero", 7, 3, 11, 9, 5, 0.01, 4, 40)
  # No arguments: the demo, MuZero (learned model, Gumbel) on tic-tac-toe.
  c = train_lib.config_from_args(train_lib.build_parser().parse_args([]))
  assert (c.env, c.algo, c.policy) == ("tictactoe", "muzero", "gumbel")


def test_end_to_end_run_files(tmp_path):
  """A whole (tiny) run: metrics, evaluation, plot, checkpoint, run.json."""
  out = tmp_path / "catch"
  config = dataclasses.replace(tiny("catch", **SMOKE["catch"]), eval_every=2)
  train_lib.prepare_new_run(str(out), config)
  summary = train_lib.train(config, str(out), progress=False,
                            log=lambda *_: None)
  assert summary["iteration"] == config.steps
  assert sorted(os.listdir(out)) == sorted([
      train_lib.RUN_FILE, train_lib.CHECKPOINT_DIR, train_lib.METRICS_FILE,
      train_lib.EVAL_FILE, train_lib.PLOT_FILE])
  rows = [json.loads(l) for l in open(out / train_lib.METRICS_FILE)]
  assert [r["iteration"] for r in rows] == [1, 2, 3, 4]
  assert "catch_rate" in rows[1] and "catch_rate" not in rows[0]
  result = json.load(open(out / train_lib.EVAL_FILE))
  assert 0.0 <= result["catch_rate"] <= 1.0
  assert sharded_ckpt.latest_step(
      str(out / train_lib.CHECKPOINT_DIR)) == 4
  assert "catch_rate" in evaluate_lib.format_report(result)


# --------------------------------------------------- learning (slow)
def _train_default(tmp_path, env, max_minutes):
  """Trains `env`'s default configuration quietly; the train() result."""
  config = config_lib.make_config(env)
  train_lib.prepare_new_run(str(tmp_path / "r"), config)
  return train_lib.train(config, str(tmp_path / "r"), progress=False,
                         quick_eval=False, plot=False,
                         max_minutes=max_minutes)


@pytest.mark.slow
def test_catch_learns(tmp_path):
  out = _train_default(tmp_path, "catch", max_minutes=5)
  assert out["final_eval"]["catch_rate"] >= 0.95


@pytest.mark.slow
def test_tictactoe_muzero_never_loses_to_perfect_player(tmp_path):
  out = _train_default(tmp_path, "tictactoe", max_minutes=10)
  ev = out["final_eval"]
  assert ev["vs_perfect_first_loss"] == 0.0
  assert ev["vs_perfect_second_loss"] == 0.0


@pytest.mark.slow
def test_connect4_alphazero_beats_random(tmp_path):
  """The 30-minute target: >= 95% wins against a random player."""
  out = _train_default(tmp_path, "connect4", max_minutes=30)
  ev = out["final_eval"]
  assert (ev["vs_random_first_win"] + ev["vs_random_second_win"]) / 2 >= 0.95
