"""The README's example runs as written, and the links of the README and of
docs/ (guides and measurements) lead to files and headings that exist."""
import glob
import os
import re

ROOT = os.path.dirname(os.path.dirname(__file__))


def test_readme_example_runs():
  path = os.path.join(ROOT, "README.md")
  with open(path) as f:
    blocks = re.findall(r"```python\n(.*?)```", f.read(), re.S)
  assert blocks
  namespace = {}
  exec(compile(blocks[0], "README.md", "exec"), namespace)  # pylint: disable=exec-used
  out = namespace["out"]
  assert out.action.shape == (4,)
  assert out.action_weights.shape == (4, 3)


def _anchors(path):
  """GitHub's anchors of a markdown file's headings."""
  with open(path) as f:
    headings = re.findall(r"^#+ (.*)$", f.read(), re.M)
  return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
          for h in headings}


def test_links_of_readme_and_docs_resolve():
  pages = [os.path.join(ROOT, "README.md")] + glob.glob(
      os.path.join(ROOT, "docs", "**", "*.md"), recursive=True)
  assert any("measurements" in p for p in pages)
  broken = []
  for page in pages:
    with open(page) as f:
      text = f.read()
    for target, anchor in re.findall(r"\]\(([^)#\s]*)(#[^)\s]*)?\)", text):
      if target.startswith(("http://", "https://", "mailto:")):
        continue
      path = os.path.normpath(os.path.join(os.path.dirname(page), target)
                              if target else page)
      where = f"{os.path.relpath(page, ROOT)}: {target}{anchor}"
      if not os.path.exists(path):
        broken.append(where)
      elif anchor and path.endswith(".md") and anchor[1:] not in _anchors(path):
        broken.append(where + " (no such heading)")
  assert not broken, broken
