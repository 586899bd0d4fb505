"""A noise-multiplier sweep, notebook style: for each noise multiplier run the same small
federated simulation and plot epsilon (both: against observers and against the coordinator)
against the personalized keyboard's next-word top-3.

    PYTHONPATH=build/python /usr/bin/python3 examples/noise_sweep.py [--quick] [--out sweep.png]

Default: the main job's population (200 devices) for 5 rounds per point, a few minutes per
point on 2 cores; --quick runs a tiny population (seconds per point; what the tests run).
"""
import argparse
import json

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402

import fedlora  # noqa: E402

QUICK = {
    "pretrain": {"vocab": 320, "hidden": 32, "layers": 1, "heads": 2, "steps": 20, "batch": 4,
                 "public_lines": 400},
    "model.compress": "none",
    "data": {"data": "personas:users=30,lines=16", "devices": 24},
    "rounds": {"rounds": 2, "cohort": 12, "eval_every": 2, "eval_users": 4,
               "personalize_steps": 2, "personalize_compare": False},
    "local": {"steps": 2, "batch": 2, "seq_len": 32},
    "lora": {"rank": 2, "alpha": 4},
}
FULL = {"rounds": {"rounds": 5, "eval_every": 5, "personalize_compare": False}}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a tiny population (seconds per point)")
    ap.add_argument("--noise", type=float, nargs="+", default=[0.6, 1.0, 1.6])
    ap.add_argument("--out", default="noise_sweep.png", help="the plot")
    ap.add_argument("--json", action="store_true", help="print the points as one JSON object")
    args = ap.parse_args()

    base = QUICK if args.quick else FULL
    points = []
    for z in args.noise:
        run = fedlora.simulate({**base, "privacy.noise_multiplier": z})
        s = run["summary"]
        points.append({"noise": z, "epsilon": s["epsilon_observers"],
                       "epsilon_coordinator": s["epsilon_coordinator"],
                       "top3": s["participants"]["personalized"]["next_word_top3"],
                       "keystroke_savings": s["participants"]["personalized"]["keystroke_savings"]})
        if not args.json:
            p = points[-1]
            print(f"noise {z:4.2f}: epsilon {p['epsilon']:.2f} (observers) / "
                  f"{p['epsilon_coordinator']:.2f} (coordinator), next-word top-3 {p['top3']:.3f}")

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([p["epsilon"] for p in points], [p["top3"] for p in points], "o-",
            label="against observers of releases")
    ax.plot([p["epsilon_coordinator"] for p in points], [p["top3"] for p in points], "s--",
            label="against the coordinator")
    for p in points:
        ax.annotate(f"z={p['noise']:g}", (p["epsilon"], p["top3"]), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
    ax.set_xlabel("epsilon at delta of the run")
    ax.set_ylabel("personalized next-word top-3 (participants)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    if args.json:
        print(json.dumps({"points": points, "plot": args.out}))
    else:
        print(f"plot: {args.out}")


if __name__ == "__main__":
    main()
