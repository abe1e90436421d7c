"""The RFM proxy target: who is "high risk" when the data carries no default labels.

Per customer: Recency (days from the last transaction to the snapshot), Frequency (transactions) and
Monetary (sum of ``Value``). ``log1p`` on frequency and monetary, standard scaling, K-Means with k=3; the
high-risk cluster is picked by rule on the cluster centres — highest recency, lowest frequency and
monetary, i.e. the largest ``R - F - M`` in scaled units — never by cluster index.

Two modes build the labelled training set:

* ``same-window`` — the original method: RFM over the whole period, features over the whole period.
  Circular: the label is a function of aggregates that are also features.
* ``forward`` — features from transactions before a cutoff, RFM and label from the performance window
  after it (the last ``window_days``). A customer silent in the window has F = 0 and M = 0 and a recency
  counted from their last transaction before the cutoff. Only customers with history before the cutoff
  are scored, since only they have features.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.preprocessing import StandardScaler

from ml.errors import TargetError
from ml.features import build_features
from ml.schema import TIME_COLUMN

log = logging.getLogger(__name__)

RFM_COLUMNS = ("recency", "frequency", "monetary")
MIN_CUSTOMERS = 10


@dataclass(frozen=True)
class ProxyTarget:
    """Per-customer RFM, clusters and label, with the centres the high-risk cluster was chosen from."""

    rfm: pd.DataFrame  # index CustomerId; recency, frequency, monetary, cluster, is_high_risk
    centres: pd.DataFrame  # per cluster: RFM centre in original units, scaled centre, size, risk score
    high_risk_cluster: int
    snapshot: pd.Timestamp

    @property
    def high_risk_share(self) -> float:
        return float(self.rfm["is_high_risk"].mean())


@dataclass(frozen=True)
class TrainingSet:
    """Feature rows (one per transaction) with the customer's label, ready to split and fit."""

    mode: str
    X: pd.DataFrame  # the 26 features
    y: np.ndarray  # is_high_risk per row (the customer's label)
    customers: np.ndarray  # CustomerId per row: the grouping key
    times: np.ndarray  # TransactionStartTime per row, to find each customer's latest row
    target: ProxyTarget
    cutoff: pd.Timestamp | None = None
    notes: dict[str, object] = field(default_factory=dict)


def compute_rfm(
    transactions: pd.DataFrame,
    snapshot: pd.Timestamp,
    customers: pd.Index | None = None,
    since: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """RFM per customer at ``snapshot``.

    Frequency and monetary count transactions in ``[since, snapshot)`` (all before ``snapshot`` when
    ``since`` is None); recency is days from the customer's last transaction before ``snapshot`` (in or
    before the window) to ``snapshot``. ``customers`` fixes the index: customers absent from the window get
    F = 0, M = 0.
    """
    ts = transactions[TIME_COLUMN]
    history = transactions.loc[ts < snapshot]
    last = history.groupby("CustomerId")[TIME_COLUMN].max()
    window = history if since is None else history.loc[history[TIME_COLUMN] >= since]
    grouped = window.groupby("CustomerId")["Value"]
    index = customers if customers is not None else last.index
    rfm = pd.DataFrame(index=pd.Index(index, name="CustomerId"))
    rfm["recency"] = (snapshot - last.reindex(rfm.index)).dt.total_seconds() / 86_400
    rfm["frequency"] = grouped.size().reindex(rfm.index, fill_value=0).astype("float64")
    rfm["monetary"] = grouped.sum().reindex(rfm.index, fill_value=0.0).astype("float64")
    if rfm["recency"].isna().any():
        missing = rfm.index[rfm["recency"].isna()][:5].tolist()
        raise TargetError(f"customers without any transaction before {snapshot}: {missing}")
    return rfm


def assign_proxy_target(
    rfm: pd.DataFrame, snapshot: pd.Timestamp, random_state: int = 42, min_high_risk_share: float = 0.02
) -> ProxyTarget:
    """Cluster RFM with K-Means (k=3) and label the least engaged cluster ``is_high_risk = 1``."""
    if len(rfm) < MIN_CUSTOMERS:
        raise TargetError(
            f"the proxy target needs at least {MIN_CUSTOMERS} customers to cluster, got {len(rfm)}. "
            "Use more data (or a longer period)."
        )
    features = np.column_stack(
        [rfm["recency"], np.log1p(rfm["frequency"]), np.log1p(rfm["monetary"].clip(lower=0))]
    )
    scaled = StandardScaler().fit_transform(features)
    if np.unique(scaled.round(12), axis=0).shape[0] < 3:
        raise TargetError(
            "customers have fewer than 3 distinct RFM profiles: K-Means with k=3 has nothing to separate."
        )
    kmeans = KMeans(n_clusters=3, random_state=random_state, n_init=10).fit(scaled)
    labels = kmeans.labels_

    centres = pd.DataFrame(kmeans.cluster_centers_, columns=[f"{c}_scaled" for c in RFM_COLUMNS])
    for column in RFM_COLUMNS:
        centres[column] = rfm[column].groupby(labels).mean().reindex(centres.index).to_numpy()
    centres["customers"] = np.bincount(labels, minlength=3)
    # Least engaged: long since the last transaction, few transactions, little value.
    centres["risk_score"] = (
        centres["recency_scaled"] - centres["frequency_scaled"] - centres["monetary_scaled"]
    )
    high = int(centres["risk_score"].idxmax())
    centres["is_high_risk"] = (centres.index == high).astype(int)
    centres.index.name = "cluster"

    log.info(
        "RFM clusters (snapshot %s):\n%s",
        snapshot,
        centres[["customers", *RFM_COLUMNS, "risk_score", "is_high_risk"]].round(2).to_string(),
    )
    size = int(centres.loc[high, "customers"])
    minimum = max(2, int(np.ceil(min_high_risk_share * len(rfm))))
    if size < minimum:
        raise TargetError(
            f"the high-risk RFM cluster is degenerate: {size} of {len(rfm)} customers (need at least {minimum}, "
            f"{min_high_risk_share:.0%}). The data has no meaningful disengaged group; check the period and the "
            "performance window, or lower --min-high-risk-share."
        )
    out = rfm.copy()
    out["cluster"] = labels
    out["is_high_risk"] = (labels == high).astype("int64")
    return ProxyTarget(rfm=out, centres=centres, high_risk_cluster=high, snapshot=snapshot)


def build_training_set(
    transactions: pd.DataFrame,
    mode: str,
    window_days: int = 30,
    random_state: int = 42,
    min_high_risk_share: float = 0.02,
) -> TrainingSet:
    """Label transactions with the proxy target in ``mode`` (``forward`` or ``same-window``)."""
    ts = transactions[TIME_COLUMN]
    period_end = ts.max()
    if mode == "same-window":
        snapshot = period_end + pd.Timedelta(days=1)
        target = assign_proxy_target(
            compute_rfm(transactions, snapshot), snapshot, random_state, min_high_risk_share
        )
        rows = transactions
        cutoff = None
    elif mode == "forward":
        snapshot = period_end + pd.Timedelta(seconds=1)
        cutoff = snapshot - pd.Timedelta(days=window_days)
        if cutoff <= ts.min():
            raise TargetError(
                f"the performance window ({window_days} days) covers the whole period {ts.min()} to {period_end}: "
                "no history is left for features. Use a longer period or a shorter --performance-window-days."
            )
        rows = transactions.loc[ts < cutoff]
        customers = pd.Index(rows["CustomerId"].unique())
        rfm = compute_rfm(transactions, snapshot, customers=customers, since=cutoff)
        target = assign_proxy_target(rfm, snapshot, random_state, min_high_risk_share)
    else:
        raise ValueError(f"unknown target mode {mode!r}: use 'forward' or 'same-window'")

    X = build_features(rows).reset_index(drop=True)
    customer = rows["CustomerId"].to_numpy()
    y = target.rfm["is_high_risk"].reindex(customer).to_numpy(dtype=np.int64)
    notes = {
        "rows": len(rows),
        "customers": len(target.rfm),
        "high_risk_customers": int(target.rfm["is_high_risk"].sum()),
        "high_risk_rows": int(y.sum()),
        "snapshot": str(target.snapshot),
        "cutoff": None if cutoff is None else str(cutoff),
    }
    log.info("%s target: %s", mode, notes)
    return TrainingSet(
        mode=mode,
        X=X,
        y=y,
        customers=customer,
        times=rows[TIME_COLUMN].to_numpy(),
        target=target,
        cutoff=cutoff,
        notes=notes,
    )
