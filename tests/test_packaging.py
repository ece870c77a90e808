"""What `pip install` of the project gives a user: a wheel that holds the
library `mcts` and nothing else (no generic top-level names such as `agents`
or `envs`, which would shadow a user's own folders), and that runs the
README's example in a fresh venv with only its declared dependencies."""

import os
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What a build must not see: the checkout's own venv, caches, git, outputs.
_NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", "*.egg-info", "build", "dist",
    ".pytest_cache", "runs", "bench_results")
_SETUPTOOLS = (77,)  # pyproject's [build-system] requires (SPDX license).


def _readme_example():
  with open(os.path.join(ROOT, "README.md")) as f:
    blocks = re.findall(r"```python\n(.*?)```", f.read(), re.S)
  assert blocks
  return blocks[0]


def _build_wheel(tmp_path):
  """Builds the wheel from a copy of the checkout (the build writes
  egg-info and build/ beside its sources), offline: with the setuptools of
  this venv (the dev extra installs it) instead of an isolated download."""
  import setuptools  # pylint: disable=g-import-not-at-top
  have = tuple(int(p) for p in setuptools.__version__.split(".")[:1])
  assert have >= _SETUPTOOLS, (
      f"setuptools {setuptools.__version__} is older than pyproject's "
      f"build requirement (>= {_SETUPTOOLS[0]}): reinstall the dev extra "
      "(`make test` does, or `pip install -e '.[dev]'`)")
  src = tmp_path / "src"
  shutil.copytree(ROOT, src, ignore=_NOT_SOURCES)
  out = tmp_path / "wheel"
  run = subprocess.run(
      [sys.executable, "-m", "pip", "wheel", "--no-deps",
       "--no-build-isolation", "--no-index", "--quiet", "--wheel-dir",
       str(out), str(src)],
      capture_output=True, text=True, timeout=300)
  assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
  wheels = list(out.glob("*.whl"))
  assert len(wheels) == 1, wheels
  return wheels[0]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
  return _build_wheel(tmp_path_factory.mktemp("packaging"))


def test_wheel_holds_the_library_and_nothing_else(wheel):
  with zipfile.ZipFile(wheel) as z:
    names = z.namelist()
  assert wheel.name.startswith("batched_mcts-")
  top = {n.split("/")[0] for n in names}
  dist_info = {t for t in top if t.endswith(".dist-info")}
  assert len(dist_info) == 1, top
  assert top - dist_info == {"mcts"}, top
  for generic in ("agents", "envs", "tests", "benchmarks", "examples"):
    assert not any(n.startswith(generic + "/") for n in names), generic
  # Every module of the library, its subpackages included, is in it.
  library = set()
  for folder, _, files in os.walk(os.path.join(ROOT, "mcts")):
    for name in files:
      if name.endswith(".py"):
        library.add(os.path.relpath(os.path.join(folder, name), ROOT)
                    .replace(os.sep, "/"))
  assert "mcts/__init__.py" in library
  assert library <= set(names), sorted(library - set(names))
  # The metadata states the library's dependencies, and the extras.
  with zipfile.ZipFile(wheel) as z:
    metadata = z.read(f"{dist_info.pop()}/METADATA").decode()
  requires = re.findall(r"^Requires-Dist: (.*)$", metadata, re.M)
  plain = {re.split(r"[ <>=!~;\[]", r)[0] for r in requires if "extra ==" not in r}
  assert plain == {"jax", "jaxlib", "chex", "numpy"}, requires
  extras = set(re.findall(r"^Provides-Extra: (.*)$", metadata, re.M))
  assert {"agents", "openspiel", "pgx", "bitbully", "dev"} <= extras, extras


def _checks_after_example():
  """Appended to the README's example: the shapes it promises, that `mcts`
  came from the venv's site-packages, and that nothing generic came along."""
  return """
import importlib.util, os
assert out.action.shape == (4,)
assert out.action_weights.shape == (4, 3)
assert "site-packages" in os.path.abspath(mcts.__file__), mcts.__file__
for name in ("agents", "envs"):
  assert importlib.util.find_spec(name) is None, name
print("OK from site-packages")
"""


@pytest.mark.slow  # Downloads jax and its dependencies into a fresh venv.
def test_fresh_venv_with_only_the_wheel_runs_the_readme_example(tmp_path,
                                                                 wheel):
  venv = tmp_path / "venv"
  subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True,
                 timeout=300)
  python = str(venv / "bin" / "python")
  install = subprocess.run(
      [python, "-m", "pip", "install", "--quiet", str(wheel)],
      capture_output=True, text=True, timeout=900)
  assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
  # Outside the checkout and without PYTHONPATH, so that `mcts` can only come
  # from the installed wheel.
  work = tmp_path / "elsewhere"
  work.mkdir()
  (work / "example.py").write_text(_readme_example() + _checks_after_example())
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  env["JAX_PLATFORMS"] = "cpu"
  run = subprocess.run([python, "example.py"], cwd=work, env=env,
                       capture_output=True, text=True, timeout=600)
  assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
  assert "OK from site-packages" in run.stdout

