"""The RFM proxy target: who is "high risk" when the data carries no default labels.

RFM is Recency (days from the last transaction to the end of the window), Frequency (transactions) and
Monetary (sum of ``Value``). ``log1p`` on frequency and monetary, standard scaling, K-Means (k=3 by
default); the high-risk cluster is picked by rule on the cluster centres — highest recency, lowest frequency
and monetary, i.e. the largest ``R - F - M`` in scaled units — never by cluster index.

Two windows feed it (:mod:`ml.observations` decides which rows use which):

* :func:`outcome_rfm` — the application-point design: for each transaction, what the customer does *after*
  it, over a fixed horizon. Recency runs from the customer's last activity in ``[t, t + horizon]`` (the
  transaction itself at the latest) to ``t + horizon``; frequency and monetary count only the transactions
  after it. Nothing the features can see enters the label.
* :func:`compute_rfm` — one RFM per customer at a snapshot (the ``same-window`` diagnostic: the whole
  period, whose label re-states aggregates that are also features).

:func:`fit_proxy_label` fits the scaler and K-Means once, on the development rows (customer-weighted), and
the fitted :class:`ProxyLabel` labels any other rows — the out-of-time ones included — by the nearest centre,
so every split is labelled by the same definition.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.preprocessing import StandardScaler

from ml.errors import TargetError
from ml.features import Timeline
from ml.schema import TIME_COLUMN

log = logging.getLogger(__name__)

RFM_COLUMNS = ("recency", "frequency", "monetary")
DEFAULT_K = 3  # the seed's K-Means cluster count; the model card shows the label's sensitivity to it
MIN_ROWS = 10
SECONDS_PER_DAY = 86_400


def outcome_rfm(transactions: pd.DataFrame, horizon_days: float) -> pd.DataFrame:
    """Per transaction: RFM of what its customer does after it, over ``horizon_days``.

    "After" follows the feature order (customer, time, file order on ties): a later row of the same second
    is after, an earlier one is history. Returns ``recency``, ``frequency``, ``monetary`` and ``complete``
    (the horizon ends on or before the last timestamp of the data, so the outcome is fully observed), aligned
    with the input index.
    """
    timeline = Timeline.of(transactions)
    order, codes, seconds = timeline.order, timeline.codes, timeline.seconds
    value = timeline.sorted(transactions["Value"]).astype(np.float64)
    horizon = int(round(horizon_days * SECONDS_PER_DAY))

    # One sorted key per row (customer first, then time) makes every horizon end a single searchsorted.
    offset = seconds - seconds.min()
    key = codes * (int(offset.max()) + horizon + 1) + offset
    end = np.searchsorted(key, key + horizon, side="right")  # one past the last row in [t, t + horizon]
    position = np.arange(len(order))
    cumulative = np.concatenate([[0.0], np.cumsum(value)])

    out = np.empty((len(order), 4))
    out[order, 0] = (seconds + horizon - seconds[end - 1]) / SECONDS_PER_DAY
    out[order, 1] = end - position - 1
    out[order, 2] = cumulative[end] - cumulative[position + 1]
    out[order, 3] = seconds + horizon <= seconds.max()
    frame = pd.DataFrame(out, columns=[*RFM_COLUMNS, "complete"], index=transactions.index)
    return frame.astype({"complete": bool})


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
    rfm["recency"] = (snapshot - last.reindex(rfm.index)).dt.total_seconds() / SECONDS_PER_DAY
    rfm["frequency"] = grouped.size().reindex(rfm.index, fill_value=0).astype("float64")
    rfm["monetary"] = grouped.sum().reindex(rfm.index, fill_value=0.0).astype("float64")
    if rfm["recency"].isna().any():
        missing = rfm.index[rfm["recency"].isna()][:5].tolist()
        raise TargetError(f"customers without any transaction before {snapshot}: {missing}")
    return rfm


def _rfm_space(rfm: pd.DataFrame) -> np.ndarray:
    return np.column_stack(
        [
            rfm["recency"].to_numpy(dtype=np.float64),
            np.log1p(rfm["frequency"].to_numpy(dtype=np.float64)),
            np.log1p(rfm["monetary"].clip(lower=0).to_numpy(dtype=np.float64)),
        ]
    )


@dataclass(frozen=True)
class ProxyLabel:
    """A fitted label definition: scaler and K-Means on RFM, and the cluster the rule calls high risk."""

    scaler: StandardScaler
    kmeans: KMeans
    high_risk_cluster: int
    centres: pd.DataFrame  # per cluster: scaled centre, mean RFM, weighted share, risk score, is_high_risk
    k: int

    def clusters(self, rfm: pd.DataFrame) -> np.ndarray:
        return self.kmeans.predict(self.scaler.transform(_rfm_space(rfm)))

    def assign(self, rfm: pd.DataFrame) -> np.ndarray:
        """``is_high_risk`` (0/1) of each RFM row: its nearest centre is the high-risk one."""
        return (self.clusters(rfm) == self.high_risk_cluster).astype(np.int64)


def fit_proxy_label(
    rfm: pd.DataFrame,
    weights: np.ndarray | None = None,
    k: int = 3,
    random_state: int = 42,
    min_high_risk_share: float = 0.02,
    what: str = "customers",
) -> ProxyLabel:
    """Fit scaler and K-Means on ``rfm`` (rows weighted by ``weights``) and pick the high-risk cluster by rule.

    Fails with :class:`TargetError` on too few rows, fewer than ``k`` distinct RFM profiles, or a high-risk
    cluster holding less than ``min_high_risk_share`` of the (weighted) rows.
    """
    if len(rfm) < MIN_ROWS:
        raise TargetError(
            f"the proxy target needs at least {MIN_ROWS} {what} to cluster, got {len(rfm)}. "
            "Use more data (or a longer period)."
        )
    weights = np.ones(len(rfm)) if weights is None else np.asarray(weights, dtype=np.float64)
    space = _rfm_space(rfm)
    scaler = StandardScaler().fit(space, sample_weight=weights)
    scaled = scaler.transform(space)
    if np.unique(scaled.round(12), axis=0).shape[0] < k:
        raise TargetError(
            f"{what} have fewer than {k} distinct RFM profiles: K-Means with k={k} has nothing to separate."
        )
    kmeans = KMeans(n_clusters=k, random_state=random_state, n_init=10).fit(scaled, sample_weight=weights)
    labels = kmeans.labels_

    centres = pd.DataFrame(kmeans.cluster_centers_, columns=[f"{c}_scaled" for c in RFM_COLUMNS])
    share = np.bincount(labels, weights=weights, minlength=k) / weights.sum()
    for column in RFM_COLUMNS:
        values = rfm[column].to_numpy(dtype=np.float64)
        sums = np.bincount(labels, weights=weights * values, minlength=k)
        centres[column] = sums / np.maximum(np.bincount(labels, weights=weights, minlength=k), 1e-12)
    centres["rows"] = np.bincount(labels, minlength=k)
    centres["share"] = share
    # Least engaged: long since the last transaction, few transactions, little value.
    centres["risk_score"] = (
        centres["recency_scaled"] - centres["frequency_scaled"] - centres["monetary_scaled"]
    )
    high = int(centres["risk_score"].idxmax())
    centres["is_high_risk"] = (centres.index == high).astype(int)
    centres.index.name = "cluster"
    log.debug("RFM clusters:\n%s", centres.round(3).to_string())

    if share[high] < min_high_risk_share or centres.loc[high, "rows"] < 2:
        raise TargetError(
            f"the high-risk RFM cluster is degenerate: {share[high]:.1%} of the {what} "
            f"({int(centres.loc[high, 'rows'])} of {len(rfm)} rows; need at least {min_high_risk_share:.0%}). "
            "The data has no meaningful disengaged group; check the period and the horizon, "
            "or lower --min-high-risk-share."
        )
    return ProxyLabel(scaler=scaler, kmeans=kmeans, high_risk_cluster=high, centres=centres, k=k)
