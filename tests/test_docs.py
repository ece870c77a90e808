"""Every ```python block of docs/ (docs/*.md and below) runs as written,
each in a fresh namespace from a scratch directory. A block that cannot
run here follows a line `<!-- not run: <why> -->`; there are few."""
import glob
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_BLOCK = re.compile(r"(?:<!-- not run: (?P<why>[^>]*?) -->\n)?"
                    r"```python\n(?P<code>.*?)```", re.S)


def docs_blocks():
  """(file relative to the root, index, code, why not run or None)."""
  blocks = []
  for path in sorted(glob.glob(os.path.join(ROOT, "docs", "**", "*.md"),
                               recursive=True)):
    with open(path) as f:
      text = f.read()
    name = os.path.relpath(path, ROOT)
    for i, match in enumerate(_BLOCK.finditer(text)):
      blocks.append((name, i, match["code"], match["why"]))
  return blocks


BLOCKS = docs_blocks()


def test_docs_have_examples_and_few_are_not_run():
  assert len(BLOCKS) >= 3
  not_run = [(name, why) for name, _, _, why in BLOCKS if why is not None]
  assert all(why.strip() for _, why in not_run)
  assert len(not_run) <= 2, not_run


@pytest.mark.parametrize("name,index,code,why", BLOCKS,
                         ids=[f"{b[0]}:{b[1]}" for b in BLOCKS])
def test_docs_example_runs(name, index, code, why, tmp_path, monkeypatch):
  if why is not None:
    pytest.skip(f"{name} block {index}: {why}")
  monkeypatch.chdir(tmp_path)
  exec(compile(code, f"{name} (block {index})", "exec"), {})  # pylint: disable=exec-used
