"""The public 26-feature contract, computed point in time.

A row is one transaction together with its customer's history: the customer aggregates use only that
customer's transactions up to and including the scored one (ties in time are broken by file order), so
they are the numbers a live system can know when the transaction arrives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from credit_features.definition import PASSTHROUGH_FEATURES, feature_matrix
from ml.errors import DataValidationError
from ml.schema import AGGREGATE_FEATURES, FEATURE_NAMES, RAW_COLUMNS, TIME_COLUMN


def build_features(transactions: pd.DataFrame) -> pd.DataFrame:
    """Validated transactions → float64 frame of the 26 features, same index and row order as the input.

    The rules are :mod:`credit_features.definition`'s, the transformer's too; only the expanding customer
    statistics are computed here, vectorised over the whole history."""
    tx = transactions
    seconds = tx[TIME_COLUMN].to_numpy(dtype="datetime64[s]").astype(np.int64)
    aggregates = _point_in_time_aggregates(tx).loc[:, list(AGGREGATE_FEATURES)].to_numpy()
    columns = {name: tx[name].to_numpy() for name in (*PASSTHROUGH_FEATURES, "ProductCategory")}
    try:
        matrix = feature_matrix(columns, seconds, aggregates)
    except ValueError as exc:  # an unknown category: validate_transactions refuses it first
        raise DataValidationError(str(exc)) from exc
    return pd.DataFrame(matrix, index=tx.index, columns=list(FEATURE_NAMES))


@dataclass(frozen=True)
class Timeline:
    """Transactions sorted by customer, then time, simultaneous rows in file order — the order "up to and
    including" is defined on, for the features and for the label's horizon. ``order`` holds the input row
    positions in that order; ``codes`` (integer customer codes) and ``seconds`` are already sorted by it."""

    order: np.ndarray
    codes: np.ndarray
    seconds: np.ndarray

    @classmethod
    def of(cls, transactions: pd.DataFrame) -> Timeline:
        # Integer customer codes: sorting and grouping on them is far cheaper than on the ID strings.
        codes = pd.factorize(transactions["CustomerId"])[0].astype(np.int64)
        nanoseconds = transactions[TIME_COLUMN].to_numpy(dtype="datetime64[ns]").astype(np.int64)
        order = np.lexsort((np.arange(len(codes)), nanoseconds, codes))
        return cls(order, codes[order], nanoseconds[order] // 10**9)

    def sorted(self, column: pd.Series) -> np.ndarray:
        """``column``'s values in timeline order."""
        return column.to_numpy()[self.order]


def _point_in_time_aggregates(transactions: pd.DataFrame) -> pd.DataFrame:
    """Expanding per-customer statistics of Amount, in time order, aligned back to the input index."""
    timeline = Timeline.of(transactions)
    frame = pd.DataFrame(
        {"customer": timeline.codes, "amount": timeline.sorted(transactions["Amount"])},
        index=pd.Index(timeline.order),
    )
    grouped = frame.groupby("customer", sort=False)["amount"]
    expanding = grouped.expanding()

    count = grouped.cumcount() + 1
    total = grouped.cumsum()
    aggregates = pd.DataFrame(
        {
            "total_transaction_amount": total,
            "avg_transaction_amount": total / count,
            "transaction_count": count,
            # The definition's rules (credit_features.definition): ddof=1, and a single transaction has no
            # spread: 0, not NaN, so the model input is always finite; an even count's median is the mean of
            # the two middle amounts (pandas' too).
            "std_transaction_amount": expanding.std().droplevel(0).fillna(0.0),
            "min_transaction_amount": grouped.cummin(),
            "max_transaction_amount": grouped.cummax(),
            "median_transaction_amount": expanding.median().droplevel(0),
        }
    ).sort_index()
    aggregates.index = transactions.index
    return aggregates


HISTORY_COLUMNS = ("days_since_previous", "history_count", "history_value")


def engagement_history(transactions: pd.DataFrame) -> pd.DataFrame:
    """Point-in-time engagement of each row's customer, outside the 26-feature contract.

    ``days_since_previous`` (NaN on a customer's first row; 0 for a simultaneous earlier row),
    ``history_count`` (transactions up to and including this one) and ``history_value`` (their summed
    ``Value``): the recency, frequency and Value-based monetary a rule or an audit can read at the moment a
    transaction arrives. The no-model baselines and the leakage audit use them; the model does not.
    """
    timeline = Timeline.of(transactions)
    order, codes, seconds = timeline.order, timeline.codes, timeline.seconds
    first = np.ones(len(order), dtype=bool)
    first[1:] = codes[1:] != codes[:-1]
    gap = np.empty(len(order))
    gap[0] = np.nan
    gap[1:] = (seconds[1:] - seconds[:-1]) / 86_400
    gap[first] = np.nan
    sorted_frame = pd.DataFrame({"customer": codes, "value": timeline.sorted(transactions["Value"])})
    grouped = sorted_frame.groupby("customer", sort=False)["value"]
    out = np.empty((len(order), 3))
    out[order, 0] = gap
    out[order, 1] = grouped.cumcount().to_numpy() + 1
    out[order, 2] = grouped.cumsum().to_numpy()
    return pd.DataFrame(out, columns=list(HISTORY_COLUMNS), index=transactions.index)


class TransactionFeatures(TransformerMixin, BaseEstimator):
    """scikit-learn transformer: validated Xente transactions → the 26 model features.

    Stateless (the feature contract fixes every category), so ``fit`` only checks the input columns. It
    sits before the model pipeline rather than inside the ONNX graph because point-in-time aggregates need
    the customer's history, which a scoring request does not carry: the caller sends the 26 numbers.
    """

    def fit(self, X: pd.DataFrame, y: object = None) -> TransactionFeatures:
        self._check_columns(X)
        self.n_features_in_ = len(RAW_COLUMNS)
        self.feature_names_in_ = np.asarray(RAW_COLUMNS, dtype=object)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "n_features_in_")
        self._check_columns(X)
        return build_features(X)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return np.asarray(FEATURE_NAMES, dtype=object)

    @staticmethod
    def _check_columns(X: pd.DataFrame) -> None:
        missing = [c for c in RAW_COLUMNS if c not in getattr(X, "columns", ())]
        if missing:
            raise DataValidationError(
                f"TransactionFeatures needs validated Xente transactions; missing column(s): {', '.join(missing)}. "
                "Load them with ml.load.read_transactions or ml.load.validate_transactions."
            )
