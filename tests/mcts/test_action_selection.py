"""`mcts.action_selection`: the argmax and softmax the selection rules use,
in both implementations (one variadic reduction for few elements, separate
ones for more), mapped over the trees as `search` maps a rule."""
import jax
import numpy as np
import pytest

import mcts


def _per_tree(fn, num_trees, *rows):
  """`fn` applied to `[R, A]` rows in groups of `num_trees`, each group
  mapped over the trees' axis as `search` maps a selection rule."""
  per_tree = jax.jit(jax.vmap(fn, axis_name=mcts.reductions.TREE_AXIS))
  return np.concatenate([per_tree(*(r[i:i + num_trees] for r in rows))
                         for i in range(0, len(rows[0]), num_trees)])


@pytest.mark.parametrize("num_actions", [16, 362])
@pytest.mark.parametrize("num_trees", [1, 64])
def test_masked_argmax_is_the_first_valid_maximum(num_actions, num_trees):
  # Both implementations (one reduction for under 64 elements: one tree of
  # 16 actions; max + first index from 64 on), each row mapped over the
  # trees as `search` maps a selection rule: ties go to the lowest index,
  # invalid actions never win, an all-invalid row gives action 0 and a row
  # with NaNs its first NaN, as jnp.argmax does.
  rng = np.random.default_rng(num_actions)
  scores = rng.integers(0, 4, (64, num_actions)).astype(np.float32)
  invalid = rng.random((64, num_actions)) < 0.5
  invalid[0] = True
  scores[1] = -np.inf
  scores[2, [5, 9]] = scores[3, num_actions - 1] = np.nan
  invalid[2, [5, 9]] = invalid[3, num_actions - 1] = False
  got = _per_tree(mcts.masked_argmax, num_trees, scores, invalid)
  masked = np.where(invalid, -np.inf, scores)
  np.testing.assert_array_equal(got, np.argmax(masked, axis=-1))
  assert not invalid[np.arange(2, 64), got[2:]].any()
  assert got.dtype == np.int32


@pytest.mark.parametrize("num_trees", [1, 64])
def test_selection_softmax_matches_jax_softmax(num_trees):
  # One tree of 16 actions takes the online (max, sum) reduction, 64 trees
  # jax.nn.softmax; rows with an invalid action (the lowest float), a huge
  # spread and all-equal logits.
  rng = np.random.default_rng(num_trees)
  logits = rng.normal(0, 30, (64, 16)).astype(np.float32)
  logits[0, 3] = np.finfo(np.float32).min
  logits[1] = 0.0
  logits[2, :8] = -1e30
  got = _per_tree(mcts.action_selection.softmax, num_trees, logits)
  np.testing.assert_allclose(got, jax.nn.softmax(logits), rtol=1e-5,
                             atol=1e-7)
  assert got[0, 3] == 0 and np.all(got[1] == got[1, 0])
