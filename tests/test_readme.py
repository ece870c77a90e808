"""The README's example runs as written."""
import os
import re


def test_readme_example_runs():
  path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "README.md")
  with open(path) as f:
    blocks = re.findall(r"```python\n(.*?)```", f.read(), re.S)
  assert blocks
  namespace = {}
  exec(compile(blocks[0], "README.md", "exec"), namespace)  # pylint: disable=exec-used
  out = namespace["out"]
  assert out.action.shape == (4,)
  assert out.action_weights.shape == (4, 3)
