#!/usr/bin/env python3
"""Which ports this pod may open: ``python3 netpol_probe.py HOST:PORT=open|blocked ...``.

Run inside a probe pod by k8s/e2e.sh to check the chart's NetworkPolicies from a given set of labels.
A TCP connection that completes within 5 s is "open"; one that times out, is refused or reset is
"blocked" (a policy drops the SYN). Prints one line per target; exits 1 when any target is not as expected.
Standard library only (runs in the serving image).
"""

from __future__ import annotations

import socket
import sys


def state(host: str, port: int, timeout: float = 5.0) -> str:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return "open"
    except OSError as exc:
        return f"blocked ({type(exc).__name__})"


def main(argv: list[str]) -> int:
    wrong = 0
    for target in argv:
        address, expected = target.rsplit("=", 1)
        host, port = address.rsplit(":", 1)
        got = state(host, int(port))
        ok = got.split(" ", 1)[0] == expected
        wrong += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {address}: {got}, expected {expected}", flush=True)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
