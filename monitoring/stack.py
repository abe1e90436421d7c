"""A real Prometheus scraping real predictors, for the monitoring tests and ``monitoring/snapshot.py``.

* :class:`Prometheus` — ``prometheus`` on a loopback port with a temporary config and data folder,
  stopped by its own PID.
* :func:`rules_with_windows` — the product rule file with shorter windows and ``for`` durations, so the
  30-minute PSI math can be proven in seconds (rule and series names unchanged).
* :func:`dashboard_queries` / :func:`substitute` — every PromQL expression of a dashboard JSON (panels,
  annotations) with Grafana's variables replaced by concrete values.
* :class:`Traffic` — V2 scoring requests from a population of rows, with a share of bad requests.

Nothing here imports the tests or the predictor: the callers pass URLs and rows.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from harness.net import free_port, http, wait_ready

HERE = Path(__file__).resolve().parent
RULES = HERE / "prometheus" / "credit-risk-rules.yml"
DASHBOARDS = HERE / "grafana" / "dashboards"
MODEL = "credit-risk"
# The scrape job of the predictors: the job CreditRiskModelAbsent's selector names in the rule file.
JOB = "credit-risk-predictor"
# The transformer's series (and the series recorded from them) share this prefix. The snapshot scrapes
# predictors only and leaves the transformer's panels out.
TRANSFORMER_SERIES = "credit_risk_transformer_"

# Short windows for a run of a couple of minutes, scraping and evaluating every second.
TEST_RANGES = {"30m": "24s", "15m": "10s", "5m": "8s", "1d": "10m"}
TEST_FOR = {"30m": "4s", "15m": "4s", "10m": "4s", "5m": "3s"}
TEST_RATE_INTERVAL = "8s"


# ------------------------------------------------------------------------------------------------ rules


def rules_with_windows(text: str, ranges: dict[str, str], fors: dict[str, str]) -> str:
    """The rule file with every range selector ``[X]`` and every ``for: X`` mapped through the tables."""
    document = yaml.safe_load(text)
    for group in document["groups"]:
        for rule in group["rules"]:
            rule["expr"] = re.sub(
                r"\[(\d+[smhdw])\]", lambda m: f"[{ranges.get(m.group(1), m.group(1))}]", rule["expr"]
            )
            if "for" in rule:
                rule["for"] = fors.get(rule["for"], rule["for"])
    return yaml.safe_dump(document, sort_keys=False, width=200)


def rule_list(text: str) -> list[dict]:
    return [rule for group in yaml.safe_load(text)["groups"] for rule in group["rules"]]


# ------------------------------------------------------------------------------------------------ dashboards


@dataclass(frozen=True)
class PanelQuery:
    panel: str
    panel_type: str
    ref: str
    expr: str
    legend: str
    instant: bool
    grid: dict = field(default_factory=dict, hash=False, compare=False)


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def dashboard_queries(dashboard: dict) -> list[PanelQuery]:
    """Every target of every panel (rows' nested panels too) and every Prometheus annotation."""
    out = []

    def panels(items: list[dict]) -> Iterator[dict]:
        for p in items:
            yield p
            yield from panels(p.get("panels") or [])

    for panel in panels(dashboard.get("panels", [])):
        for target in panel.get("targets") or []:
            if target.get("expr"):
                out.append(PanelQuery(panel["title"], panel["type"], target.get("refId", ""), target["expr"],
                                      target.get("legendFormat", ""), bool(target.get("instant")),
                                      panel.get("gridPos", {})))  # fmt: skip
    for annotation in dashboard.get("annotations", {}).get("list", []):
        if annotation.get("expr"):
            out.append(
                PanelQuery(
                    f"annotation: {annotation['name']}", "annotation", "", annotation["expr"], "", False
                )
            )
    return out


def reads_transformer(text: str) -> bool:
    """Whether a PromQL expression (or a recorded series' name) reads the transformer's series."""
    return TRANSFORMER_SERIES in text


def dashboard_variables(dashboard: dict) -> list[dict]:
    return dashboard.get("templating", {}).get("list", [])


def substitute(expr: str, values: dict[str, str]) -> str:
    """Grafana's ``$name`` / ``${name}`` / ``[[name]]`` variables replaced by ``values``."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in values:
            raise KeyError(f"no value for the dashboard variable ${name} in {expr!r}")
        return values[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]", one, expr)


def label_values_query(query: str) -> tuple[str, str]:
    """``label_values(SELECTOR, LABEL)`` → (selector, label)."""
    match = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", query)
    if not match:
        raise ValueError(f"not a label_values() query: {query!r}")
    return match.group(1), match.group(2)


# ------------------------------------------------------------------------------------------------ Prometheus


@dataclass
class Target:
    address: str  # host:port of a predictor
    labels: dict[str, str]  # static labels, e.g. namespace and pod


class Prometheus:
    """``prometheus`` with a scrape job over ``targets`` and ``rules`` loaded; a context manager."""

    def __init__(self, workdir: Path, targets: list[Target], rules: str | None = None,
                 interval: str = "1s", binary: str = "prometheus") -> None:  # fmt: skip
        self.workdir = workdir
        self.targets = targets
        self.rules = rules
        self.interval = interval
        self.binary = shutil.which(binary) or binary
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.log = workdir / "prometheus.log"

    def config(self) -> dict:
        config: dict = {
            "global": {
                "scrape_interval": self.interval,
                "scrape_timeout": self.interval,
                "evaluation_interval": self.interval,
            },
            "scrape_configs": [
                {
                    "job_name": JOB,
                    "static_configs": [{"targets": [t.address], "labels": t.labels} for t in self.targets],
                }
            ],
        }
        if self.rules is not None:
            (self.workdir / "rules.yml").write_text(self.rules)
            config["rule_files"] = [str(self.workdir / "rules.yml")]
        return config

    def __enter__(self) -> Prometheus:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [self.binary, f"--config.file={config}", f"--storage.tsdb.path={self.workdir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1d"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        try:
            wait_ready(self.url + "/-/ready", "prometheus", 30, self.process, self.log)
        except RuntimeError:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)  # this process only, by its PID
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    # --- HTTP API

    def api(self, path: str, **params: object) -> dict:
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None}, doseq=True)
        body = json.loads(
            http("GET", f"{self.url}/api/v1/{path}?{query}", timeout=10).body
        )  # 400/422: the error
        if body.get("status") != "success":
            raise PromQLError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        return self.api("query", query=expr, time=at)["result"]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict]:
        return self.api("query_range", query=expr, start=start, end=end, step=step)["result"]

    def series(self, match: str) -> list[dict]:
        return self.api("series", **{"match[]": match})

    def value(self, expr: str, at: float | None = None) -> float:
        result = self.query(expr, at)
        if len(result) != 1:
            raise PromQLError(f"{expr}: expected one series, got {len(result)}: {result}")
        return float(result[0]["value"][1])

    def rules_state(self) -> list[dict]:
        return [rule for group in self.api("rules")["groups"] for rule in group["rules"]]

    def alerts(self) -> list[dict]:
        return self.api("alerts")["alerts"]

    def targets_up(self) -> int:
        return sum(t["health"] == "up" for t in self.api("targets")["activeTargets"])


class PromQLError(RuntimeError):
    pass


# ------------------------------------------------------------------------------------------------ traffic


def shifted_population(X_train: np.ndarray, y_train: np.ndarray, feature_names: list[str], n: int,
                       seed: int = 1) -> np.ndarray:  # fmt: skip
    """A riskier population (the same recipe as tests/serving): high-risk customers' transactions, smaller
    amounts, at night, by customers with a single transaction."""
    risky = X_train[y_train == 1]
    rows = risky[np.random.default_rng(seed).integers(0, len(risky), n)].copy()
    for name in (
        "Amount",
        "Value",
        "total_transaction_amount",
        "avg_transaction_amount",
        "median_transaction_amount",
    ):
        rows[:, feature_names.index(name)] *= 0.05
    rows[:, feature_names.index("transaction_hour")] = 2
    rows[:, feature_names.index("transaction_count")] = 1
    return rows


@dataclass
class Traffic:
    """Scoring requests spread over ``servers`` (base URLs), paced to ``requests_per_second``."""

    servers: list[str]
    transformer: tuple[str, str] | None = None  # (base URL, ingestion token): a quarter of the requests
    requests_per_second: float = 20.0
    bad_share: float = 0.15  # share of malformed requests (answered 400)
    batch_sizes: tuple[int, ...] = (1, 1, 1, 2, 5, 10, 20, 40)
    seed: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    rows: int = 0

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.n = 0
        self.transformer_statuses: dict[int, int] = {}
        self.customers = [f"CustomerId_stack{i}" for i in range(40)]

    def _raw_transaction(self) -> None:
        """One raw transaction scored through the transformer, then ingested (the first ingestion of a run
        without the token: a producer that lost its credentials, refused 401)."""
        from harness.transformer import transaction

        assert self.transformer is not None
        url, token = self.transformer
        record = transaction(str(self.rng.choice(self.customers)), int(self.rng.integers(0, 28)),
                             Amount=float(self.rng.integers(100, 20_000)))  # fmt: skip
        record["Value"] = abs(record["Amount"])
        statuses = [http("POST", f"{url}/score", record).status]
        auth = {"Authorization": f"Bearer {token}"} if sum(self.transformer_statuses.values()) else {}
        statuses.append(http("POST", f"{url}/v1/transactions", [record], headers=auth).status)
        for status in statuses:
            self.transformer_statuses[status] = self.transformer_statuses.get(status, 0) + 1

    def run(self, population: np.ndarray, seconds: float) -> None:
        start, sent = time.monotonic(), 0
        while (elapsed := time.monotonic() - start) < seconds:
            server = self.servers[self.n % len(self.servers)]
            self.n += 1
            sent += 1
            if self.transformer is not None and self.n % 4 == 0:
                self._raw_transaction()
            elif self.rng.random() < self.bad_share:
                body = {
                    "inputs": [{"name": "features", "shape": [1, 25], "datatype": "FP32", "data": [1.0] * 25}]
                }
                status = http("POST", f"{server}/v2/models/{MODEL}/infer", body).status
            else:
                size = int(self.rng.choice(self.batch_sizes))
                rows = population[self.rng.integers(0, len(population), size)]
                if self.n % 5 == 0:  # the original API too
                    status = http("POST", f"{server}/predict", {"features": rows.tolist()}).status
                else:
                    body = {"inputs": [{"name": "features", "shape": list(rows.shape), "datatype": "FP32",
                                        "data": rows.ravel().tolist()}]}  # fmt: skip
                    status = http("POST", f"{server}/v2/models/{MODEL}/infer", body).status
                if status == 200:
                    self.rows += size
            self.statuses[status] = self.statuses.get(status, 0) + 1
            pause = sent / self.requests_per_second - (time.monotonic() - start)
            if pause > 0 and elapsed + pause < seconds:
                time.sleep(pause)
