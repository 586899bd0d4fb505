"""verify_release() accepts a signed release and names what is wrong with a tampered one."""
import os

import pytest

import fedlora


@pytest.fixture
def release(tmp_path, run_cli, fixture_model, fixture_adapter):
    key = tmp_path / "release.key"
    code, _, err = run_cli("keys", "new", "--out", str(key))
    assert code == 0, err
    rel = tmp_path / "rel-1"
    code, _, err = run_cli("release", "create", "--adapter", fixture_adapter, "--base",
                           fixture_model, "--version", "1", "--key", str(key), "--out", str(rel))
    assert code == 0, err
    return rel, f"{key}.pub"


def test_a_signed_release_verifies(release, fixture_model):
    rel, pub = release
    r = fedlora.verify_release(rel, trusted=pub, base=fixture_model)
    assert r["ok"] and r["version"] == 1 and r["files"] > 0


def test_a_tampered_file_is_refused(release, fixture_model, run_cli):
    rel, pub = release
    victim = next(os.path.join(d, f) for d, _, fs in os.walk(rel) for f in fs
                  if f.endswith(".safetensors"))
    with open(victim, "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 1]))
    with pytest.raises(fedlora.Error) as e:
        fedlora.verify_release(rel, trusted=pub, base=fixture_model)
    code, _, err = run_cli("release", "verify", str(rel), "--trusted", pub, "--base", fixture_model)
    assert code != 0
    assert err.strip() == f"fedlora: error: {e.value}"


def test_an_untrusted_key_is_refused(release, fixture_model, run_cli, tmp_path):
    rel, _ = release
    other = tmp_path / "other.key"
    run_cli("keys", "new", "--out", str(other))
    with pytest.raises(fedlora.Error):
        fedlora.verify_release(rel, trusted=f"{other}.pub", base=fixture_model)
