"""One harness for everything that runs the product for real: the tests, ``bench/``, ``reliability/`` and
``monitoring/`` (stack, snapshot).

* :mod:`harness.net` — loopback ports, one HTTP call, waiting for a process to answer, stopping it.
* :mod:`harness.predictor` — a small model trained by ``ml`` and a real ``python -m serving`` process.
* :mod:`harness.servers` — real protocol servers: S3 (moto), GCS (emulator), HTTPS, ``mlflow server``.

It never imports ``tests/``; the tests import it.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the checkout
