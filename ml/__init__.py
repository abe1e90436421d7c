"""Training package for Bati Bank's buy-now-pay-later credit-risk model.

The flow, one module per stage: ``load`` (read and validate Xente transactions) → ``features`` (the
26-feature contract) → ``target`` (RFM proxy target) → ``train`` (tuned candidates) → ``evaluate`` →
``export`` (ONNX with serving metadata) → ``register`` (MLflow registry, champion alias) → ``report``.
``job`` runs the whole flow; ``python -m ml`` is its command line.
"""

__version__ = "0.1.0"
