"""simulate() from a dict: the summary and per-round records as Python objects."""
import json
import os

import numpy as np
import pytest

import fedlora
from conftest import TINY_SIM


def test_a_tiny_simulation_returns_summary_rounds_and_adapter(tmp_path):
    seen = []
    r = fedlora.simulate(TINY_SIM, out=tmp_path / "run", on_round=seen.append)
    s = r["summary"]
    assert s["rounds_completed"] == 2
    assert [x["round"] for x in r["rounds"]] == [1, 2]
    assert seen == r["rounds"]  # the callback saw each record as it completed
    # Both epsilons, each finite and positive, the coordinator's never below the observers'.
    assert 0 < s["epsilon_observers"] <= s["epsilon_coordinator"]
    assert r["rounds"][1]["epsilon_observers"] >= r["rounds"][0]["epsilon_observers"]
    for group in ("participants", "heldout"):
        for variant in ("base", "global", "personalized"):
            assert 0 <= s[group][variant]["keystroke_savings"] <= 1
    a = r["global_adapter"]
    assert isinstance(a, np.ndarray) and a.dtype == np.float32 and a.size > 0
    assert np.isfinite(a).all() and np.abs(a).sum() > 0
    # The same files as `fedlora sim`, and the summary on disk equals the one returned.
    with open(os.path.join(r["out"], "summary.json")) as f:
        assert json.load(f)["epsilon_observers"] == s["epsilon_observers"]
    assert "seeded" in s["randomness"]  # the simulator says it seeds its noise


def test_the_same_seed_gives_the_same_run(tmp_path):
    a = fedlora.simulate(TINY_SIM, out=tmp_path / "a")
    b = fedlora.simulate(TINY_SIM, out=tmp_path / "b")
    np.testing.assert_array_equal(a["global_adapter"], b["global_adapter"])


def test_a_bad_key_raises_the_cli_message(run_cli, tmp_path):
    with pytest.raises(fedlora.Error) as e:
        fedlora.simulate({"rounds.rounds": "many"})
    code, _, err = run_cli("sim", "--set", "rounds.rounds=many", "--out", str(tmp_path / "x"))
    assert code != 0
    assert err.strip().endswith(f"fedlora: error: {e.value}")
    assert "rounds.rounds" in str(e.value)
    with pytest.raises(fedlora.Error, match="no_such"):
        fedlora.simulate({"rounds.no_such": 1})


def test_config_keys_lists_every_section():
    keys = dict(fedlora.config_keys())
    assert "rounds.rounds" in keys and "privacy.noise_multiplier" in keys
