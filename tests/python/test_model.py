"""Model from Python: the same strip and metrics as the CLI, adapters applied."""
import json

import pytest

import fedlora


def test_suggest_matches_the_cli(fixture_model, run_cli):
    m = fedlora.Model(fixture_model)
    words = m.suggest("The quick brown", k=3)
    assert len(words) == 3
    code, out, err = run_cli("suggest", "--model", fixture_model, "--prefix", "The quick brown",
                             "--threads", "1", "--json")
    assert code == 0, err
    cli = json.loads(out)["suggestions"]
    assert [w for w, _ in words] == [s["word"] for s in cli]
    for (_, lp), s in zip(words, cli):
        assert lp == pytest.approx(s["log_prob"], abs=1e-4)


def test_an_adapter_changes_the_scores(fixture_model, fixture_adapter):
    text = ["the cat sat on the mat", "we will meet at noon tomorrow"]
    base = fedlora.Model(fixture_model).evaluate(text)
    tuned = fedlora.Model(fixture_model, adapters=[fixture_adapter]).evaluate(text)
    assert base["tokens"] == tuned["tokens"] > 0
    assert base["perplexity"] > 0 and tuned["perplexity"] > 0
    assert base["perplexity"] != pytest.approx(tuned["perplexity"], rel=1e-6)


def test_a_missing_model_raises_with_the_path(tmp_path):
    with pytest.raises(fedlora.Error) as e:
        fedlora.Model(tmp_path / "nope")
    assert "nope" in str(e.value)
    assert e.value.code == "NOT_FOUND"
