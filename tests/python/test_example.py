"""examples/noise_sweep.py runs (quick mode) and its points make sense."""
import json
import os
import subprocess
import sys


def test_the_noise_sweep_example_runs(tmp_path):
    src = os.environ["FEDLORA_SOURCE_DIR"]
    plot = tmp_path / "sweep.png"
    p = subprocess.run([sys.executable, os.path.join(src, "examples", "noise_sweep.py"), "--quick",
                        "--noise", "0.7", "1.4", "--out", str(plot), "--json"],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    points = json.loads(p.stdout.strip().splitlines()[-1])["points"]
    assert [x["noise"] for x in points] == [0.7, 1.4]
    # More noise, less epsilon, against both observers and the coordinator.
    assert points[1]["epsilon"] < points[0]["epsilon"]
    assert points[1]["epsilon_coordinator"] < points[0]["epsilon_coordinator"]
    assert plot.stat().st_size > 1000
