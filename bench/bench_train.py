"""Training benchmark: wall time and peak memory of the default training run, and feature-engineering
throughput on 1M synthetic rows. Prints a table and writes ``bench/results/train.json``.

Run with ``make bench-train``. Goal: the default run (95,662 rows, both target modes, all five families,
grid + random search, 5-fold grouped CV, the out-of-time validation) under 3 minutes on 2 cores. It also
runs the validator's sequence (a same-window run after the forward one: the gate's decision), re-dates
the default data on the champion, and writes the synthetic-vs-real table to
``bench/results/synthetic_vs_real.md``.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ml.features import build_features  # noqa: E402
from ml.synthetic import SyntheticSpec, generate_transactions  # noqa: E402

GOAL_SECONDS = 180


def feature_throughput(rows: int = 1_000_000) -> dict[str, float]:
    started = time.perf_counter()
    transactions = generate_transactions(SyntheticSpec(rows=rows))
    generated = time.perf_counter() - started
    timings = []
    for _ in range(3):  # best of three: the steady-state cost, not the first call's warm-up
        started = time.perf_counter()
        features = build_features(transactions)
        timings.append(time.perf_counter() - started)
    assert features.shape == (rows, 26)
    tracemalloc.start()  # a separate pass: tracing slows the code it measures
    build_features(transactions)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    best = min(timings)
    return {
        "rows": rows,
        "generate_seconds": round(generated, 2),
        "features_seconds": round(best, 2),
        "features_rows_per_second": round(rows / best),
        "features_peak_allocated_mb": round(peak / 2**20, 1),
    }


def _train(workdir: str, *args: str) -> tuple[dict, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MLFLOW_TRACKING_URI", None)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "ml", "train", *args], cwd=workdir, env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.stderr.write(result.stderr[-5000:])
        raise SystemExit(f"training failed with exit code {result.returncode}")
    return json.loads(result.stdout.strip().splitlines()[-1]), wall


def redating_max_change(onnx_path: str) -> float:
    """Max |score change| of the champion when the default data is moved by months and years (whole weeks)."""
    import numpy as np
    import onnxruntime as ort
    import pandas as pd

    from ml.train import as_model_input

    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    transactions = generate_transactions(SyntheticSpec())
    base = session.run(None, {"features": as_model_input(build_features(transactions))})[0]
    worst = 0.0
    for weeks in (13, 26, 52, 3 * 52 + 9):
        moved = transactions.assign(
            TransactionStartTime=transactions["TransactionStartTime"] + pd.Timedelta(weeks=weeks)
        )
        scores = session.run(None, {"features": as_model_input(build_features(moved))})[0]
        worst = max(worst, float(np.abs(scores - base).max()))
    return worst


def default_training_run() -> dict[str, object]:
    """The default run (python -m ml train), then the validator's sequence: --target same-window on top."""
    with tempfile.TemporaryDirectory() as workdir:
        summary, wall = _train(workdir)
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        redated = redating_max_change(summary["onnx_path"])
        same_window, _ = _train(workdir, "--target", "same-window", "--no-compare-modes")
    auc = summary["test_customer_roc_auc"]
    return {
        "wall_seconds": round(wall, 1),
        "peak_rss_mb": round(peak_kb / 1024),
        "goal_seconds": GOAL_SECONDS,
        "within_goal": wall < GOAL_SECONDS,
        "champion": summary["model_type"],
        "in_time_cv_roc_auc": summary["cv_roc_auc"],
        "oot_per_customer_roc_auc": f"{auc['estimate']:.4f} [{auc['low']:.4f}, {auc['high']:.4f}]",
        "oot_per_transaction_roc_auc": summary["test_per_transaction"]["roc_auc"],
        **{
            f"baseline: {name}": f"{b['estimate']:.4f} [{b['low']:.4f}, {b['high']:.4f}]"
            for name, b in summary["baselines"].items()
        },
        **{f"audit: {route}": v["roc_auc"] for route, v in summary["leakage_audit"].items()},
        "gate (forward run)": summary["gate_rule"],
        "same_window_per_customer_roc_auc": same_window["test_customer_roc_auc"]["estimate"],
        "gate (same-window run after it)": f"{same_window['gate_rule']}: promoted={same_window['promoted']}",
        "redated_max_score_change": redated,
        "onnx_parity_max_abs_diff": summary["onnx_parity_max_abs_diff"],
    }


def synthetic_vs_real() -> str:
    """The synthetic-vs-real table of the default data, as Markdown."""
    from ml.synthetic import shape_comparison

    table = shape_comparison(generate_transactions(SyntheticSpec()))
    lines = [
        "# Built-in synthetic data against the public Xente file",
        "",
        "Written by `make bench-train` (`bench/bench_train.py`) from `ml.synthetic.shape_comparison` on the default",
        "data (95,662 rows, seed 42). Real values are those printed by the sources named; none is estimated.",
        "",
        "| fact | real | synthetic | synthetic / real | source |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for row in table.itertuples(index=False):
        lines.append(
            f"| {row.fact} | {row.real:,.2f} | {row.synthetic:,.2f} | {row.ratio:.3f} | {row.source} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    machine = {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine()}
    print("feature engineering on 1,000,000 synthetic rows …", file=sys.stderr)
    features = feature_throughput()
    print("default training run (python -m ml train) …", file=sys.stderr)
    training = default_training_run()
    results = {"machine": machine, "features_1m": features, "default_training": training}
    shape = ROOT / "bench" / "results" / "synthetic_vs_real.md"
    shape.parent.mkdir(parents=True, exist_ok=True)
    shape.write_text(synthetic_vs_real())

    width = max(len(k) for k in {**features, **training})
    print(f"\n{'feature engineering, 1M rows':<{width}}")
    for key, value in features.items():
        print(f"  {key:<{width}} {value:>14,}" if isinstance(value, int) else f"  {key:<{width}} {value:>14}")
    print(f"\n{'default training run':<{width}}")
    for key, value in training.items():
        print(f"  {key:<{width}} {value!s:>14}")
    out = ROOT / "bench" / "results" / "train.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
