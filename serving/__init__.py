"""KServe predictor for the credit-risk model: onnxruntime behind the Open Inference Protocol (V2).

Self-contained: it never imports ``ml``. Everything it needs — feature order, risk bands, threshold,
drift references, model version — is read from the ONNX model's metadata. Modules, one concern each:

* ``settings`` — the one typed configuration; ``errors`` — each error carries its HTTP status and gRPC code;
* ``artifact``, ``storage``, ``registry`` — find the model behind a URI; ``contract`` — the serving contract
  in its metadata;
* ``model`` — the ``kserve.Model`` that scores with onnxruntime;
* ``protocol`` — the V2 codec (``v2``), V2 over gRPC (``grpc``) and the original ``/predict`` API (``legacy``);
* ``app`` — the HTTP application, every route in one ``create_app()``; ``limits`` — timeouts, body limit and
  connection cap for slow or hostile clients;
* ``server`` — one worker: uvicorn and gRPC in one event loop, draining on SIGTERM; ``workers`` — the
  supervisor of several;
* ``metrics`` — Prometheus, multi-process safe; ``drift`` — score and feature PSI over a sliding window.
"""

__version__ = "0.2.0"
SERVER_NAME = "credit-risk-predictor"
