"""fedlora from Python: simulate federated rounds, plan a privacy budget, score text with a
model and its adapters, verify a release. A thin layer over the C++ library (the same code the
`fedlora` CLI runs); every failure raises fedlora.Error with the CLI's message. docs/python.md.
"""
import json
import os
import shutil
import tempfile

from . import _fedlora

Error = _fedlora.Error
Error.__module__ = "fedlora"  # shown as fedlora.Error

__all__ = ["Error", "simulate", "epsilon", "noise_for_epsilon", "Model", "verify_release",
           "config_keys"]


def _flatten(config):
    """{"rounds.rounds": 3} or {"rounds": {"rounds": 3}} -> [("rounds.rounds", "3")]."""
    out = []
    for key, value in config.items():
        if isinstance(value, dict):
            for sub, v in _flatten(value):
                out.append((f"{key}.{sub}", v))
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        out.append((key, str(value)))
    return out


def _find_fedlora_binary():
    here = os.path.dirname(os.path.abspath(__file__))
    for candidate in (os.environ.get("FEDLORA_BINARY"),
                      os.path.join(here, "..", "..", "bin", "fedlora"),  # build/python -> build/bin
                      shutil.which("fedlora")):
        if candidate and os.access(candidate, os.X_OK):
            return os.path.abspath(candidate)
    return ""


def simulate(config=None, *, out=None, force=False, fedlora_binary=None, on_round=None):
    """Runs one simulation, as `fedlora sim --set key=value ...` would.

    config: a dict of the same keys as sim config files (docs/sim.md), flat
        ({"rounds.rounds": 3}) or by section ({"rounds": {"rounds": 3}}).
    out: the output folder (report, rounds.csv, the final adapter); default: a new temporary
        folder, so runs never overwrite each other. `run.out` in config works too.
    on_round: called with each round's record (a dict) as it completes.
    Returns {"summary": dict, "rounds": [dict, ...], "global_adapter": numpy.float32 array,
             "out": path}.
    """
    settings = _flatten(config or {})
    if out is None and not any(k == "run.out" for k, _ in settings):
        out = tempfile.mkdtemp(prefix="fedlora-sim-")
        force = True
    if out is not None:
        settings.append(("run.out", str(out)))
    callback = None
    if on_round is not None:
        callback = lambda record: on_round(json.loads(record))  # noqa: E731
    summary, rounds, adapter = _fedlora.simulate(settings, force, fedlora_binary or
                                                 _find_fedlora_binary(), callback)
    summary = json.loads(summary)
    out_dir = dict(settings).get("run.out", out)
    return {"summary": summary, "rounds": [json.loads(r) for r in rounds],
            "global_adapter": adapter, "out": out_dir}


def epsilon(q, noise, steps, delta=1e-5, sampling="poisson"):
    """Epsilon of `steps` rounds of the subsampled Gaussian mechanism (RDP), as
    `fedlora privacy epsilon`. sampling: "poisson" (add/remove one user) or "fixed" (a
    fixed-size cohort without replacement, replace one user). Returns
    {"epsilon", "optimal_order", "assumes"}."""
    return _fedlora.epsilon(q, noise, steps, delta, sampling)


def noise_for_epsilon(q, epsilon, steps, delta=1e-5, sampling="poisson"):
    """The smallest noise multiplier whose run stays within `epsilon`, as
    `fedlora privacy noise`."""
    return _fedlora.noise_for_epsilon(q, epsilon, steps, delta, sampling)


class Model:
    """A base model (float or compressed, docs/compress.md) with PEFT adapters applied in turn."""

    def __init__(self, model_dir, adapters=(), threads=1):
        self._m = _fedlora.Model(str(model_dir), [str(a) for a in adapters], threads)

    def suggest(self, prefix, k=3):
        """The suggestion strip: [(word, log_prob)] of the k most likely next words."""
        return self._m.suggest(prefix, k)

    def evaluate(self, texts):
        """Keyboard metrics on a list of lines (each scored as its own message), as
        `fedlora eval --json`: perplexity, next-token and next-word top-k, keystroke savings."""
        if isinstance(texts, str):
            texts = [texts]
        return json.loads(self._m.evaluate(list(texts)))

    @property
    def vocab_size(self):
        return self._m.vocab_size


def verify_release(release_dir, trusted, base, revoked=(), installed_version=0, rollback=None):
    """Checks a release folder as a device would (`fedlora release verify`): trusted and not
    revoked key, signature, base hash, version, every file's SHA-256. Returns the manifest's
    facts; raises fedlora.Error saying what failed."""
    if isinstance(trusted, (str, os.PathLike)):
        trusted = [trusted]
    return _fedlora.verify_release(str(release_dir), [str(t) for t in trusted], str(base),
                                   list(revoked), int(installed_version),
                                   str(rollback) if rollback else "")


def config_keys():
    """[(key, description)] of every simulation config key."""
    return _fedlora.config_keys()
