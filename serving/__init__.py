"""KServe predictor for the credit-risk model: onnxruntime behind the Open Inference Protocol (V2).

Self-contained: it never imports ``ml``. Everything it needs — feature order, risk bands, threshold,
drift references, model version — is read from the ONNX model's metadata. Modules, one concern each:
``settings`` (typed configuration), ``errors`` (each error carries its HTTP status), ``artifact``
(resolve a model URI and read its metadata), ``model`` (the ``kserve.Model``), ``protocol`` (V2 tensors and
the legacy ``/predict`` API), ``metrics`` (Prometheus, multi-process safe, score and feature drift) and
``server`` (the kserve ``ModelServer`` with our routes, limits and error handling).
"""

__version__ = "0.1.0"
