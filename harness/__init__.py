"""One harness for everything that runs the product for real: the tests, ``bench/``, ``reliability/`` and
``monitoring/`` (stack, snapshot).

* :mod:`harness.net` — loopback ports, one HTTP call, waiting for a process to answer, stopping it.
* :mod:`harness.predictor` — a small model trained by ``ml``, a real ``python -m serving`` process, V2
  request bodies.
* :mod:`harness.processes` — what ``/proc`` says about a server's processes: workers, CPU, memory.
* :mod:`harness.machine` — the machine's facts (CPUs, memory, platform) and its busy CPU time.
* :mod:`harness.wrk` — ``wrk`` (installed if missing, run, its result) and the CPU other processes took.
* :mod:`harness.servers` — real protocol servers: S3 (moto), GCS (emulator), HTTPS, ``mlflow server``.

It never imports ``tests/``; the tests import it.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the checkout
