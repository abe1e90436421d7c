"""Contender 4 of ``bench/bench_serve.py``: the floor of the kserve/uvicorn stack.

A ``kserve.Model`` whose ``predict`` computes nothing and returns one constant FP32 value, served by
``kserve.ModelServer`` with the same flags as ``python -m serving``. Everything it costs — HTTP parsing,
FastAPI routing, kserve's pydantic V2 body model, ``InferRequest`` decoding, response encoding — is the
price any kserve predictor pays before scoring a row.

    python -m kserve_floor --http-port 8080 [--workers 1] [--model-name credit-risk]
"""

from __future__ import annotations

import argparse

from kserve import Model, ModelServer
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse


class ConstantModel(Model):
    def load(self) -> bool:
        self.ready = True
        return self.ready

    def predict(self, payload: InferRequest, headers: dict[str, str] | None = None) -> InferResponse:
        output = InferOutput(name="probability", shape=[1], datatype="FP32", data=[0.5])
        return InferResponse(model_name=self.name, infer_outputs=[output], response_id=payload.id or "0")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-name", default="credit-risk")
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args, _ = parser.parse_known_args()
    model = ConstantModel(args.model_name)
    model.load()
    ModelServer(
        http_port=args.http_port, workers=args.workers, enable_grpc=False, enable_latency_logging=False
    ).start([model])


if __name__ == "__main__":
    main()
