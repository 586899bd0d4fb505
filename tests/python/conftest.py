"""Shared fixtures for the Python module's tests (ctest Python.pytest sets the environment)."""
import os
import subprocess

import pytest


@pytest.fixture(scope="session")
def shared_dir():
    return os.environ.get("FEDLORA_SHARED_DIR", os.path.join(os.path.dirname(__file__), "..",
                                                             "..", "..", "shared"))


@pytest.fixture(scope="session")
def fixture_model(shared_dir):
    return os.path.join(shared_dir, "fixtures", "hf-tiny-llama", "base")


@pytest.fixture(scope="session")
def fixture_adapter(shared_dir):
    return os.path.join(shared_dir, "fixtures", "hf-tiny-llama", "adapter")


@pytest.fixture(scope="session")
def fedlora_cli():
    path = os.environ.get("FEDLORA_BINARY")
    assert path and os.access(path, os.X_OK), "set FEDLORA_BINARY to build/bin/fedlora"
    return path


@pytest.fixture(scope="session")
def run_cli(fedlora_cli):
    """Runs the CLI; returns (exit code, stdout, stderr)."""
    def run(*args):
        p = subprocess.run([fedlora_cli, *args], capture_output=True, text=True, timeout=300)
        return p.returncode, p.stdout, p.stderr
    return run


# The smallest simulation that still runs every stage (pretraining, DP, secure aggregation,
# evaluation, personalization): a few seconds on one core.
TINY_SIM = {
    "pretrain": {"vocab": 320, "hidden": 32, "layers": 1, "heads": 2, "steps": 20, "batch": 4,
                 "public_lines": 400},
    "model.compress": "none",
    "data": {"data": "personas:users=30,lines=16", "devices": 24},
    "rounds": {"rounds": 2, "cohort": 12, "eval_every": 2, "eval_users": 4,
               "personalize_steps": 2, "personalize_compare": False},
    "local": {"steps": 2, "batch": 2, "seq_len": 32},
    "lora": {"rank": 2, "alpha": 4},
    "run": {"threads": 1},
}
