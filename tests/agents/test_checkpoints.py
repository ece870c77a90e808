"""Tests of agents/runs/checkpoints.py: orbax checkpoints of a sharded
state, refused when damaged or mismatched, and their digest."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("orbax.checkpoint")

from agents.runs import checkpoints  # pylint: disable=g-import-not-at-top
from agents.training import parallel
from tests.agents.helpers import files

# Reading a damaged checkpoint, orbax abandons its other pending reads; the
# garbage collector reports them later, in whichever test runs then.
pytestmark = pytest.mark.filterwarnings(
    "ignore::pytest.PytestUnraisableExceptionWarning")


def _state():
  return dict(w=jnp.arange(4096, dtype=jnp.float32) / 7,
              b=jnp.ones((3, 5), bool), k=jax.random.PRNGKey(3),
              i=jnp.int32(7))


def _target(state):
  rep = parallel.replicated(parallel.make_mesh(1))
  return checkpoints.abstract_target(
      jax.eval_shape(lambda: state), jax.tree.map(lambda _: rep, state))


def test_sharded_checkpoint_roundtrip_and_refusals(tmp_path):
  state = _state()
  d = str(tmp_path / "ck")
  checkpoints.save(d, state, dict(iteration=1))
  loaded, meta = checkpoints.restore(d, _target(state))
  assert meta == dict(iteration=1)
  for x, y in zip(jax.tree_util.tree_leaves(loaded),
                  jax.tree_util.tree_leaves(state)):
    np.testing.assert_array_equal(x, y)
  # A write cut by a crash (orbax's temporary step directory) is ignored.
  junk = tmp_path / "ck" / "2.orbax-checkpoint-tmp-123"
  junk.mkdir()
  (junk / "garbage").write_bytes(b"half written")
  assert checkpoints.latest_step(d) == 1
  checkpoints.restore(d, _target(state))
  # A mismatched template.
  with pytest.raises(checkpoints.CheckpointError, match=r"does not match.*\['w'\]"):
    checkpoints.restore(d, _target(dict(state, w=jnp.zeros(10))))


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damaged_sharded_checkpoint_is_refused(tmp_path, damage):
  state = _state()
  d = str(tmp_path / "ck")
  checkpoints.save(d, state, dict(iteration=1))
  before = files(d)
  # The largest file holds the data of `w`.
  name = max(before, key=lambda n: len(before[n]))
  data = bytearray(before[name])
  if damage == "flip":
    data[len(data) // 2] ^= 0x10
  else:
    data = data[:len(data) // 2]
  open(os.path.join(d, name), "wb").write(bytes(data))
  damaged = files(d)
  with pytest.raises(checkpoints.CheckpointError, match="corrupted"):
    checkpoints.restore(d, _target(state))
  assert files(d) == damaged  # Nothing written.


def test_digest_sees_every_bit():
  x = np.arange(1000, dtype=np.float32)
  base = checkpoints.digest([jnp.asarray(x)])
  for i, bit in ((0, 0), (999, 31), (500, 7)):
    y = x.copy().view(np.uint32)
    y[i] ^= np.uint32(1 << bit)
    assert checkpoints.digest([jnp.asarray(y.view(np.float32))]) != base
  x = jnp.asarray(x)
  # Swapping two elements changes it too (position weights).
  assert checkpoints.digest([x.at[0].set(1.0).at[1].set(0.0)]) != base
