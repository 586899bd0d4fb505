"""The accountant from Python agrees with `fedlora privacy` and errors like it."""
import json

import pytest

import fedlora


@pytest.mark.parametrize("sampling", ["poisson", "fixed"])
def test_epsilon_matches_the_cli(run_cli, sampling):
    r = fedlora.epsilon(q=0.05, noise=1.1, steps=200, delta=1e-5, sampling=sampling)
    code, out, err = run_cli("privacy", "epsilon", "--q", "0.05", "--noise", "1.1", "--steps",
                             "200", "--delta", "1e-5", "--sampling", sampling, "--json")
    assert code == 0, err
    cli = json.loads(out)
    assert r["epsilon"] == pytest.approx(cli["epsilon"], rel=1e-12)
    assert r["assumes"] == cli["assumes"]
    assert r["epsilon"] > 0


def test_fixed_size_cohorts_cost_more_than_poisson():
    # Replace-one neighbours double the sensitivity: the same noise buys less privacy.
    p = fedlora.epsilon(0.05, 1.1, 200, 1e-5, "poisson")["epsilon"]
    f = fedlora.epsilon(0.05, 1.1, 200, 1e-5, "fixed")["epsilon"]
    assert f > p


@pytest.mark.parametrize("sampling", ["poisson", "fixed"])
def test_noise_for_epsilon_reaches_the_target(run_cli, sampling):
    z = fedlora.noise_for_epsilon(q=0.05, epsilon=4.0, steps=200, delta=1e-5, sampling=sampling)
    assert fedlora.epsilon(0.05, z, 200, 1e-5, sampling)["epsilon"] <= 4.0
    assert fedlora.epsilon(0.05, z * 0.99, 200, 1e-5, sampling)["epsilon"] > 4.0
    code, out, err = run_cli("privacy", "noise", "--q", "0.05", "--epsilon", "4", "--steps", "200",
                             "--delta", "1e-5", "--sampling", sampling, "--json")
    assert code == 0, err
    assert z == pytest.approx(json.loads(out)["noise_multiplier"], rel=1e-9)


def test_bad_input_raises_the_cli_message(run_cli):
    with pytest.raises(fedlora.Error) as e:
        fedlora.epsilon(q=1.5, noise=1.0, steps=10, delta=1e-5)
    code, _, err = run_cli("privacy", "epsilon", "--q", "1.5", "--noise", "1", "--steps", "10",
                           "--delta", "1e-5")
    assert code != 0
    assert err.strip() == f"fedlora: error: {e.value}"
    assert e.value.code == "INVALID_ARGUMENT"
    with pytest.raises(fedlora.Error, match="sampling must be"):
        fedlora.epsilon(0.1, 1.0, 10, 1e-5, sampling="uniform")
