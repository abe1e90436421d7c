"""Make a small credit-risk model for the deployment tests, and the answers it must give.

    python k8s/make_model.py --out /tmp/credit-risk-model [--rows 8000] [--seed 7] [--version 1]

Trains a LightGBM pipeline with the ``ml`` package on built-in synthetic data (no grid search, no MLflow:
seconds, not minutes), exports it with the serving metadata exactly like ``python -m ml train`` does,
and writes into ``--out``:

* ``credit-risk-v<version>.onnx`` — the only ``.onnx`` there, so the folder itself is a valid
  ``--model-uri`` (the chart mounts it read-only; kind maps it into the node with ``extraMounts``);
* ``expected.json`` — a few held-out rows and the probabilities onnxruntime gives them, with the model's
  name, version, threshold and risk bands: what ``k8s/smoke.py`` checks a running predictor against.

Files are world-readable (the predictor runs as uid 10001, not as the user who made them). Needs the
training dependencies (``pip install -e '.[train]'``); prints the two paths as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_model(out: Path, rows: int = 8_000, seed: int = 7, version: int = 1, n_expected: int = 5) -> dict:
    import numpy as np

    from ml import export
    from ml.job import fit_and_export, prepare
    from ml.load import dataset_digest
    from ml.settings import TrainSettings
    from ml.synthetic import SyntheticSpec, generate_transactions
    from ml.train import as_model_input

    settings = TrainSettings(rows=rows, seed=seed)
    transactions = generate_transactions(SyntheticSpec(rows=rows, seed=seed))
    design = prepare(transactions, settings.target, settings)
    _, model = fit_and_export(design, "lightgbm", settings, version, dataset_digest(transactions))
    X_test = as_model_input(design.test.X)
    bands = settings.risk_bands.model_dump()

    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.onnx"):  # the folder must hold exactly one model
        stale.unlink()
    onnx_path = export.save(model, out / f"credit-risk-v{version}.onnx")

    # Rows whose scores are nearest to targets across the bands (low < 0.30 <= medium <= 0.60 < high) and
    # both sides of the threshold, so the check covers every kind of answer.
    scores = export.onnx_scores(model, X_test)
    targets = np.linspace(0.02, 0.98, n_expected)
    picks = np.unique([int(np.argmin(np.abs(scores - t))) for t in targets])
    rows_out = X_test[picks].astype(np.float32)
    probabilities = export.onnx_scores(model, rows_out).astype(np.float32)
    expected = {
        "model_name": settings.registered_model,
        "model_version": str(version),
        "model_type": "lightgbm",
        "feature_names": list(export.read_metadata(model)["feature_names"]),
        "threshold": settings.threshold,
        "risk_bands": bands,
        # float32 values as exact decimals: JSON -> FP32 on the server gives the same bits.
        "rows": [[float(v) for v in row] for row in rows_out],
        "probabilities": [float(p) for p in probabilities],
        "tolerance": 1e-5,
    }
    expected_path = out / "expected.json"
    expected_path.write_text(json.dumps(expected, indent=1) + "\n")

    for path in (onnx_path, expected_path):
        path.chmod(0o644)
    out.chmod(0o755)
    return {"onnx": str(onnx_path), "expected": str(expected_path), "rows": len(picks)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for the .onnx model and expected.json"
    )
    parser.add_argument("--rows", type=int, default=8_000, help="synthetic transactions to train on")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--version", type=int, default=1, help="model version written in the metadata")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))  # run from anywhere in a checkout
    print(json.dumps(make_model(args.out, args.rows, args.seed, args.version)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
