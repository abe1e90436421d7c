"""Contender 3 of ``bench/bench_serve.py``: the usual hand-written ``kserve.Model`` around a scikit-learn pipeline.

It loads the joblib pipeline, decodes the V2 request with ``payload.inputs[0].as_numpy()``, calls
``predict_proba`` and returns P(class 1) as one FP32 output — what a team writes from the kserve docs. No
validation, no metrics. Run by ``kserve.ModelServer`` with the same flags as ``python -m serving``.

    python -m kserve_naive --model-path model.joblib --http-port 8080 [--workers 1] [--model-name credit-risk]

(``bench/serve`` on ``PYTHONPATH``, so kserve's worker processes can unpickle the model class by name.)
"""

from __future__ import annotations

import argparse

import joblib
import numpy as np
from kserve import Model, ModelServer
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse


class NaiveSklearnModel(Model):
    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        self.path = path
        self.pipeline = None

    def load(self) -> bool:
        self.pipeline = joblib.load(self.path)
        self.ready = True
        return self.ready

    def predict(self, payload: InferRequest, headers: dict[str, str] | None = None) -> InferResponse:
        features = payload.inputs[0].as_numpy()
        probability = self.pipeline.predict_proba(features)[:, 1].astype(np.float32)
        output = InferOutput(
            name="probability", shape=list(probability.shape), datatype="FP32", data=probability
        )
        return InferResponse(model_name=self.name, infer_outputs=[output], response_id=payload.id or "0")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-path", required=True)
    parser.add_argument("--model-name", default="credit-risk")
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args, _ = parser.parse_known_args()
    model = NaiveSklearnModel(args.model_name, args.model_path)
    model.load()
    ModelServer(
        http_port=args.http_port, workers=args.workers, enable_grpc=False, enable_latency_logging=False
    ).start([model])


if __name__ == "__main__":
    main()
