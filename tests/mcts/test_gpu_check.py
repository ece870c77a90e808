"""benchmarks/gpu_check runs end to end (on the CPU: the kernel in Pallas'
interpreter, two small cells) and writes its table and JSON."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


@pytest.mark.slow  # 33 s; the script's pieces are tested elsewhere.
def test_gpu_check_quick_on_cpu(tmp_path):
  out = tmp_path / "check.json"
  run = subprocess.run(
      ["bash", "benchmarks/gpu_check.sh", "--quick", "--platform", "cpu",
       "--repeats", "1"], cwd=ROOT, capture_output=True, text=True,
      timeout=300, env=dict(os.environ, PY=sys.executable,
                            CHECK_OUT=str(out)))
  assert run.returncode == 0, run.stderr[-2000:]
  assert "| tiny | muzero | 4 | 16 | 16 |" in run.stdout
  cells = json.loads(out.read_text())["cells"]
  assert [c["policy"] for c in cells] == ["muzero", "gumbel"]
  for cell in cells:
    for lib in ("kernel", "generic"):
      assert cell["libs"][lib]["time_s"] > 0
      assert cell["libs"][lib]["over_floor"] > 0
    # The interpreted kernel builds the generic walk's trees exactly.
    assert cell["kernel_vs_generic"]["roots_identical"] == 1.0
    assert cell["kernel_vs_generic"]["max_value_diff"] < 1e-5
