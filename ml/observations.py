"""Observation design: which labelled examples train the model, which test it, and how much each counts.

``forward`` (the design the served model is trained on) mirrors scoring. An example is an **application
point**: one transaction with the customer's history up to and including it (the 26 features, exactly what
the predictor receives), labelled only from what the customer does *after* it over a fixed horizon
(:func:`ml.target.outcome_rfm`). Only transactions whose horizon ends inside the data are examples, so every
label is fully observed. Time splits the examples::

    data start ── development ──┤ gap ├── out-of-time (OOT) ──┤ horizon ├ data end
                  observations   (the development labels run    observations   (the OOT labels)
                                  on into it, then stop)

The OOT window is the latest one whose labels are complete (``oot_days`` long, ending ``horizon_days``
before the last timestamp); development observations are those whose whole horizon ends before the OOT
window begins, so no label of the training data looks into the period the model is tested on. The label
definition (scaler, K-Means, rule-picked cluster) is fitted on the development observations only and
labels the OOT ones by nearest centre.

``same-window`` is the circular diagnostic: RFM over the whole period per customer, every transaction an
example, customers split into train and held-out. It is never promoted.

**Weighting.** A heavy customer makes thousands of transactions and a light one a handful; counted per row
the heavy ones would decide the model, its selection and its evaluation. Every example of a customer gets
weight ``1 / (that customer's examples in the split)``, rescaled so the weights average 1: each customer
counts the same in training (``sample_weight``), cross-validation scoring, K-Means, and the per-customer
metrics and bootstrap. Per-transaction metrics are reported unweighted beside them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ml.errors import TargetError
from ml.features import build_features, engagement_history
from ml.schema import TIME_COLUMN
from ml.target import ProxyLabel, compute_rfm, fit_proxy_label, outcome_rfm
from ml.train import grouped_folds

log = logging.getLogger(__name__)

DESIGN_VERSION = 2  # 1 was the single-cutoff design (features before a cutoff, label from the last window)


def is_application(transactions: pd.DataFrame) -> np.ndarray:
    """Rows that can be an application point: the customer's purchases (``Amount > 0``).

    A buy-now-pay-later application is made at a checkout. Credits and cash-outs (``Amount <= 0``, such as the
    platform's credits seconds after a purchase) are part of every customer's history and of the label's
    activity, but nobody applies for credit with one.
    """
    return (transactions["Amount"] > 0).to_numpy()


def customer_weights(customers: np.ndarray) -> np.ndarray:
    """``1 / rows of the customer``, rescaled to mean 1: every customer carries the same total weight."""
    codes, counts = np.unique(customers, return_inverse=True, return_counts=True)[1:]
    raw = 1.0 / counts[codes]
    return raw * len(raw) / raw.sum()


@dataclass(frozen=True)
class Observations:
    """Labelled examples of one split: features, label, customer, time, weight and context columns."""

    X: pd.DataFrame  # the 26 features, contract order
    y: np.ndarray
    customers: np.ndarray
    times: np.ndarray  # datetime64 of the application point
    weights: np.ndarray  # customer weights within this split (mean 1)
    history: pd.DataFrame  # days_since_previous, history_count, history_value (baselines and the audit)
    outcome: pd.DataFrame  # the label's inputs: recency, frequency, monetary of the horizon
    rows: np.ndarray  # positions of the examples in the design's transactions

    def __len__(self) -> int:
        return len(self.y)

    @property
    def n_customers(self) -> int:
        return int(pd.unique(self.customers).size)

    @property
    def positive_customers(self) -> int:
        return int(pd.unique(self.customers[self.y == 1]).size)

    @property
    def negative_customers(self) -> int:
        return int(pd.unique(self.customers[self.y == 0]).size)

    @property
    def positive_rate(self) -> float:
        """Share of high-risk examples, customer-weighted."""
        return float(np.average(self.y, weights=self.weights)) if len(self) else float("nan")

    def summary(self) -> dict[str, object]:
        return {
            "observations": len(self),
            "customers": self.n_customers,
            "positive_customers": self.positive_customers,
            "positive_rate_per_customer": round(self.positive_rate, 4),
            "positive_rate_per_transaction": round(float(self.y.mean()), 4) if len(self) else None,
            "first": str(pd.Timestamp(self.times.min())) if len(self) else None,
            "last": str(pd.Timestamp(self.times.max())) if len(self) else None,
        }


@dataclass(frozen=True)
class Windows:
    """The forward design's dates (UTC): development, gap and out-of-time windows."""

    data_start: pd.Timestamp
    data_end: pd.Timestamp
    horizon_days: int
    oot_days: int
    development_end: pd.Timestamp  # development observations are strictly before this
    oot_start: pd.Timestamp  # OOT observations in [oot_start, oot_end]
    oot_end: pd.Timestamp

    def describe(self) -> dict[str, str]:
        return {
            "data": f"{self.data_start} to {self.data_end}",
            "development observations": f"{self.data_start} to before {self.development_end}",
            "development labels end by": str(self.development_end + pd.Timedelta(days=self.horizon_days)),
            "out-of-time observations": f"{self.oot_start} to {self.oot_end}",
            "out-of-time labels end by": str(self.data_end),
        }


@dataclass(frozen=True)
class Design:
    """Train and test examples of one target mode, with the label definition that made them."""

    mode: str
    name: str  # identity of the observation design: the gate compares only models of the same one
    train: Observations
    test: Observations
    test_kind: str  # "out-of-time" or "held-out customers"
    label: ProxyLabel
    windows: Windows | None = None
    transactions: pd.DataFrame | None = field(default=None, repr=False)
    notes: dict[str, object] = field(default_factory=dict)

    @property
    def out_of_time(self) -> bool:
        return self.test_kind == "out-of-time"


def design_name(mode: str, horizon_days: int, oot_days: int, k: int = 3) -> str:
    if mode == "forward":
        return f"application-point-v{DESIGN_VERSION}/horizon-{horizon_days}d/oot-{oot_days}d/k{k}"
    return f"same-window-v{DESIGN_VERSION}/k{k}"


def forward_windows(ts: pd.Series, horizon_days: int, oot_days: int) -> Windows:
    """The development / OOT windows for data spanning ``ts``; :class:`TargetError` if it is too short."""
    start, end = ts.min(), ts.max()
    horizon, oot = pd.Timedelta(days=horizon_days), pd.Timedelta(days=oot_days)
    oot_end = end - horizon
    oot_start = oot_end - oot
    development_end = oot_start - horizon
    if development_end <= start:
        needed = 2 * horizon_days + oot_days
        raise TargetError(
            f"the data spans {start} to {end} ({(end - start).total_seconds() / 86_400:.1f} days): the forward "
            f"design needs more than {needed} days (a {horizon_days}-day horizon after the development "
            f"observations, a {oot_days}-day out-of-time window, and its own {horizon_days}-day horizon). "
            "Use a longer history, or a shorter --horizon-days / --oot-days."
        )
    return Windows(start, end, horizon_days, oot_days, development_end, oot_start, oot_end)


def _observations(
    features: pd.DataFrame,
    y: np.ndarray,
    transactions: pd.DataFrame,
    history: pd.DataFrame,
    outcome: pd.DataFrame,
    mask: np.ndarray,
) -> Observations:
    customers = transactions["CustomerId"].to_numpy()[mask]
    return Observations(
        X=features.loc[mask].reset_index(drop=True),
        y=np.asarray(y)[mask].astype(np.int64),
        customers=customers,
        times=transactions[TIME_COLUMN].to_numpy(dtype="datetime64[ns]")[mask],
        weights=customer_weights(customers) if mask.any() else np.empty(0),
        history=history.loc[mask].reset_index(drop=True),
        outcome=outcome.loc[mask].reset_index(drop=True),
        rows=np.flatnonzero(mask),
    )


def build_design(
    transactions: pd.DataFrame,
    mode: str,
    horizon_days: int = 30,
    oot_days: int = 14,
    test_size: float = 0.2,
    random_state: int = 42,
    min_high_risk_share: float = 0.02,
    k: int = 3,
) -> Design:
    """Label ``transactions`` in ``mode`` and split them (see the module docstring)."""
    tx = transactions.reset_index(drop=True)
    ts = tx[TIME_COLUMN]
    applications = is_application(tx)
    if mode == "forward":
        windows = forward_windows(ts, horizon_days, oot_days)
        outcome = outcome_rfm(tx, horizon_days)
        development = applications & (ts < windows.development_end).to_numpy()
        oot = applications & ((ts >= windows.oot_start) & (ts <= windows.oot_end)).to_numpy()
        dev_customers = tx["CustomerId"].to_numpy()[development]
        if not development.any():
            raise TargetError(f"no transactions before {windows.development_end}: nothing to develop on.")
        label = fit_proxy_label(
            outcome.loc[development],
            customer_weights(dev_customers),
            k=k,
            random_state=random_state,
            min_high_risk_share=min_high_risk_share,
            what="development observations",
        )
        y = label.assign(outcome)
        features, history = build_features(tx), engagement_history(tx)
        train = _observations(features, y, tx, history, outcome, development)
        test = _observations(features, y, tx, history, outcome, oot)
        test_kind = "out-of-time"
    elif mode == "same-window":
        windows = None
        snapshot = ts.max() + pd.Timedelta(days=1)
        rfm = compute_rfm(tx, snapshot)
        label = fit_proxy_label(
            rfm, k=k, random_state=random_state, min_high_risk_share=min_high_risk_share, what="customers"
        )
        per_customer = pd.Series(label.assign(rfm), index=rfm.index)
        y = per_customer.reindex(tx["CustomerId"]).to_numpy()
        # The label's inputs, repeated on each of the customer's rows.
        outcome = rfm.reindex(tx["CustomerId"]).reset_index(drop=True)
        features, history = build_features(tx), engagement_history(tx)
        held_out = _held_out_customers(y, tx["CustomerId"].to_numpy(), test_size, random_state)
        train = _observations(features, y, tx, history, outcome, applications & ~held_out)
        test = _observations(features, y, tx, history, outcome, applications & held_out)
        test_kind = "held-out customers"
    else:
        raise ValueError(f"unknown target mode {mode!r}: use 'forward' or 'same-window'")

    design = Design(
        mode=mode,
        name=design_name(mode, horizon_days, oot_days, k),
        train=train,
        test=test,
        test_kind=test_kind,
        label=label,
        windows=windows,
        transactions=tx,
    )
    design.notes.update(
        {
            "design": design.name,
            "test": test_kind,
            **({} if windows is None else windows.describe()),
            "train": train.summary(),
            "test_split": test.summary(),
        }
    )
    log.info("%s design %s: train %s; %s %s", mode, design.name, train.summary(), test_kind, test.summary())
    return design


def _held_out_customers(y: np.ndarray, customers: np.ndarray, test_size: float, seed: int) -> np.ndarray:
    """Rows of a stratified ``test_size`` share of customers (the first fold of a grouped, stratified split)."""
    n_splits = max(2, round(1 / test_size))
    _, test = next(grouped_folds(y, customers, n_splits, seed, "the held-out split", "Use more data."))
    mask = np.zeros(len(y), dtype=bool)
    mask[test] = True
    return mask


def check_sample_size(design: Design, min_customers: int, min_positive_customers: int) -> None:
    """Refuse to train on too little data: :class:`TargetError` (exit code 3) naming every shortfall."""
    shortfalls = []
    for split, obs in (("training", design.train), (design.test_kind, design.test)):
        if obs.n_customers < min_customers:
            shortfalls.append(f"{split} split has {obs.n_customers} customers (minimum {min_customers})")
        if obs.positive_customers < min_positive_customers:
            shortfalls.append(
                f"{split} split has {obs.positive_customers} high-risk customers (minimum {min_positive_customers})"
            )
        if obs.negative_customers < min_positive_customers:
            shortfalls.append(
                f"{split} split has {obs.negative_customers} customers with a low-risk example "
                f"(minimum {min_positive_customers})"
            )
    if shortfalls:
        raise TargetError(
            f"too little data to train and validate the {design.mode} model ({design.name}): "
            + "; ".join(shortfalls)
            + ". Use a longer or larger history, or lower --min-customers / --min-positive-customers."
        )
