"""examples/notebook_api.py runs the VAE pipeline with ``fusion`` alone: it must work, learn the
planted group effect, and never import Catalyst, Hydra or the Catalyst adapters."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "notebook_api.py"

CHECK = """
import json, runpy, sys
from pathlib import Path
example = runpy.run_path(sys.argv[1])
result = example["main"](Path(sys.argv[2]), epochs=2)
frameworks = {"catalyst", "hydra", "omegaconf", "fusion_runners", "fusion_callbacks"}
result["modules"] = sorted(m for m in sys.modules if m.split(".")[0] in frameworks)
print("RESULT " + json.dumps(result))
"""


@pytest.mark.slow
def test_notebook_example_needs_no_catalyst_and_separates_the_groups(tmp_path):
    proc = subprocess.run([sys.executable, "-c", CHECK, str(EXAMPLE), str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    result = json.loads(line[len("RESULT "):])
    assert result["modules"] == []
    assert result["auc_mean"] > 0.75  # the tiny cohort's planted effect; chance is 0.5
    assert result["importance_sum"] == pytest.approx(1.0)
