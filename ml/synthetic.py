"""Seeded, vectorised generator of Xente-shaped transactions: the built-in default data.

The real dataset cannot be shipped, so the default training data is synthetic, shaped like the public
Xente sample (see ``REAL_SHAPE``): same columns and formats, the same category counts at the default size,
heavy-tailed customer activity, credits from ``AccountId_4841`` seconds after ChannelId_3 purchases,
utility-bill fees, ~0.2% fraud.

It also plants a learnable relation between behaviour and future disengagement. Each customer has a latent
disengagement propensity ``z``. Customers with a high ``z`` spend less per transaction, buy more airtime and
fewer bills, transact more at night, use pricing strategy 4 more often, transact less often — and are more
likely to stop transacting before the end of the period (churn). Churn is what the forward proxy target
observes, and every one of those behaviours is visible in the 26 features before the churn happens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.schema import RAW_COLUMNS

# Facts about the full public dataset (95,662 rows) the defaults reproduce.
REAL_SHAPE = {
    "rows": 95_662,
    "customers": 3_742,
    "start": "2018-11-15T02:18:49Z",
    "end": "2019-02-13T10:01:28Z",
    "category_counts": {
        "financial_services": 45_405,
        "airtime": 45_027,
        "utility_bill": 1_920,
        "data_bundles": 1_613,
        "tv": 1_279,
        "ticket": 216,
        "movies": 175,
        "transport": 25,
        "other": 2,
    },
    "credit_account_rows": 30_893,  # rows of AccountId_4841
    "top_customer_rows": 4_091,  # CustomerId_7343
    "fraud_rows": 193,
    "amount_min": -1_000_000.0,
    "amount_max": 9_880_000.0,
}

CREDIT_ACCOUNT = "AccountId_4841"
CREDIT_SUBSCRIPTION = "SubscriptionId_3829"
TOP_CUSTOMER = "CustomerId_7343"

# ProductId -> (ProductCategory, ProviderId): 23 products, 6 providers. ProductId_6 is the 4841 credit.
PRODUCTS: dict[str, tuple[str, str]] = {
    "ProductId_1": ("airtime", "ProviderId_6"),
    "ProductId_3": ("airtime", "ProviderId_5"),
    "ProductId_4": ("airtime", "ProviderId_3"),
    "ProductId_10": ("airtime", "ProviderId_6"),
    "ProductId_6": ("financial_services", "ProviderId_4"),
    "ProductId_15": ("financial_services", "ProviderId_1"),
    "ProductId_2": ("financial_services", "ProviderId_4"),
    "ProductId_7": ("financial_services", "ProviderId_2"),
    "ProductId_9": ("financial_services", "ProviderId_4"),
    "ProductId_14": ("financial_services", "ProviderId_1"),
    "ProductId_21": ("utility_bill", "ProviderId_1"),
    "ProductId_22": ("utility_bill", "ProviderId_3"),
    "ProductId_23": ("utility_bill", "ProviderId_5"),
    "ProductId_11": ("data_bundles", "ProviderId_6"),
    "ProductId_19": ("data_bundles", "ProviderId_6"),
    "ProductId_24": ("tv", "ProviderId_5"),
    "ProductId_8": ("tv", "ProviderId_3"),
    "ProductId_20": ("ticket", "ProviderId_5"),
    "ProductId_27": ("ticket", "ProviderId_3"),
    "ProductId_13": ("movies", "ProviderId_5"),
    "ProductId_16": ("movies", "ProviderId_5"),
    "ProductId_5": ("transport", "ProviderId_5"),
    "ProductId_12": ("other", "ProviderId_5"),
}
CREDIT_PRODUCT = "ProductId_6"

# Typical amounts (UGX) per category: lognormal median and spread before the customer's spend level.
_AMOUNT = {
    "airtime": (1_400.0, 0.9),
    "data_bundles": (1_500.0, 0.8),
    "financial_services": (4_000.0, 1.7),
    "utility_bill": (15_000.0, 0.9),
    "tv": (20_000.0, 0.6),
    "ticket": (30_000.0, 0.7),
    "movies": (10_000.0, 0.5),
    "transport": (40_000.0, 0.5),
    "other": (50_000.0, 0.5),
}
# Categories from most to least typical of engaged customers: rows are dealt out in this order by a
# noisy engagement key, which keeps the exact counts and ties the category mix to the latent propensity.
_CATEGORY_ORDER = (
    "utility_bill",
    "tv",
    "transport",
    "ticket",
    "other",
    "financial_services",
    "data_bundles",
    "movies",
    "airtime",
)


@dataclass(frozen=True)
class SyntheticSpec:
    """Size and seed of a synthetic dataset; the rest is scaled from ``REAL_SHAPE``."""

    rows: int = REAL_SHAPE["rows"]
    customers: int | None = None
    seed: int = 42
    start: str = REAL_SHAPE["start"]
    end: str = REAL_SHAPE["end"]

    @property
    def n_customers(self) -> int:
        if self.customers is not None:
            return min(self.customers, self.rows)
        scaled = round(REAL_SHAPE["customers"] * self.rows / REAL_SHAPE["rows"])
        return int(min(max(scaled, 1), self.rows))


def generate_transactions(spec: SyntheticSpec | None = None) -> pd.DataFrame:
    """Return a typed frame with the 16 Xente columns (as :func:`ml.load.validate_transactions` returns)."""
    spec = spec or SyntheticSpec()
    if spec.rows < 1:
        raise ValueError("rows must be positive")
    rng = np.random.default_rng(spec.seed)
    n_rows, n_cust = spec.rows, spec.n_customers
    scale = n_rows / REAL_SHAPE["rows"]

    # --- How many rows of each kind: exact category counts (largest remainder), credit pairs, fraud.
    cat_counts = _largest_remainder(REAL_SHAPE["category_counts"], n_rows)
    n_credit = min(round(REAL_SHAPE["credit_account_rows"] * scale), cat_counts["financial_services"])
    n_credit = min(n_credit, (n_rows - n_credit) - 1) if n_rows > 1 else 0
    n_credit = max(n_credit, 0)
    n_base = n_rows - n_credit  # purchases and other transactions; each credit follows one of them
    base_counts = dict(cat_counts)
    base_counts["financial_services"] -= n_credit

    # --- Customers: latent propensity, spend level, activity window, and how many base rows each makes.
    z = rng.standard_normal(n_cust)
    spend = rng.normal(0.0, 0.45, n_cust) - 0.45 * z  # log-multiplier on amounts
    night = 1.0 / (1.0 + np.exp(-(1.6 * z - 2.0)))  # share of night-time transactions
    start = pd.Timestamp(spec.start).value // 10**9
    end = pd.Timestamp(spec.end).value // 10**9
    span = end - start
    joined = start + (rng.beta(0.6, 1.6, n_cust) * span * 0.95).astype(np.int64)
    churns = rng.random(n_cust) < 1.0 / (1.0 + np.exp(-(1.7 * z - 0.3)))
    # Customer 0 is the very active one (see _allocate): active over the whole period, like CustomerId_7343.
    joined[0], churns[0] = start, False
    stop_share = rng.beta(2.0, 2.5, n_cust)
    left = np.where(churns, joined + ((end - joined) * stop_share).astype(np.int64), end)
    left = np.maximum(left, joined + 60)

    weights = rng.lognormal(0.0, 1.1, n_cust) * np.exp(-0.6 * z)
    per_customer = _allocate(rng, weights, n_base, n_credit / max(n_base, 1), scale)

    # --- Base rows: owner, time, category, product, channel, amount.
    owner = np.repeat(np.arange(n_cust), per_customer)
    zr = z[owner]
    day_start = joined[owner] + ((left[owner] - joined[owner]) * rng.random(n_base)).astype(np.int64)
    day_start -= (day_start - start) % 86_400  # midnight (in the period's time zone) of that day
    hour = np.where(
        rng.random(n_base) < night[owner],
        rng.integers(0, 5, n_base),
        np.clip(rng.normal(13.0, 3.5, n_base), 6, 23).astype(np.int64),
    )
    ts = day_start + hour * 3_600 + rng.integers(0, 3_600, n_base)
    ts = np.clip(ts, np.maximum(joined[owner], start), np.minimum(left[owner], end - 120))

    key = 0.9 * zr + rng.logistic(0.0, 1.0, n_base)
    category = np.empty(n_base, dtype=object)
    category[np.argsort(key, kind="stable")] = np.repeat(
        _CATEGORY_ORDER, [base_counts[c] for c in _CATEGORY_ORDER]
    )

    product, provider = _pick_products(rng, category)
    channel = rng.choice(
        np.array(["ChannelId_3", "ChannelId_2", "ChannelId_5", "ChannelId_1"]),
        size=n_base,
        p=[0.88, 0.096, 0.016, 0.008],
    )
    amount = _amounts(rng, category, spend[owner])
    # Cash-outs: about a third of financial-services rows are negative, on ChannelId_2.
    cash_out = (category == "financial_services") & (rng.random(n_base) < 0.3)
    amount[cash_out] = -np.minimum(amount[cash_out], 900_000.0)
    channel[cash_out] = "ChannelId_2"
    fee = np.where(category == "utility_bill", np.round(amount * rng.uniform(0.02, 0.1, n_base), -1), 0.0)
    value = np.abs(amount) + fee
    pricing = np.where(
        rng.random(n_base) < 0.05 + 0.05 * (zr > 1),
        4,
        rng.choice(np.array([2, 0, 1]), size=n_base, p=[0.9, 0.06, 0.04]),
    )

    # --- Credits: seconds after a ChannelId_3 purchase, from AccountId_4841, 1-5% of the purchase.
    eligible = np.flatnonzero((channel == "ChannelId_3") & (category != "financial_services") & (amount > 0))
    n_credit = min(n_credit, len(eligible))
    paired = np.sort(rng.choice(eligible, size=n_credit, replace=False))
    credit = -np.round(amount[paired] * rng.uniform(0.01, 0.05, n_credit) * 4) / 4
    credit = np.minimum(credit, -2.0)

    # --- Assemble base rows then credit rows; a credit keeps its purchase's customer.
    customer_ids = _customer_ids(rng, n_cust, per_customer)
    account = np.array([f"AccountId_{i}" for i in _distinct(rng, n_cust, 1, max(5_000, 2 * n_cust), {4841})])
    subscription = np.array(
        [f"SubscriptionId_{i}" for i in _distinct(rng, n_cust, 1, max(5_000, 2 * n_cust), {3829})]
    )
    n_total = n_base + n_credit
    frame = pd.DataFrame(
        {
            "CustomerId": customer_ids[np.concatenate([owner, owner[paired]])],
            "AccountId": np.concatenate([account[owner], np.full(n_credit, CREDIT_ACCOUNT)]),
            "SubscriptionId": np.concatenate([subscription[owner], np.full(n_credit, CREDIT_SUBSCRIPTION)]),
            "ProviderId": np.concatenate([provider, np.full(n_credit, PRODUCTS[CREDIT_PRODUCT][1])]),
            "ProductId": np.concatenate([product, np.full(n_credit, CREDIT_PRODUCT)]),
            "ProductCategory": np.concatenate([category, np.full(n_credit, "financial_services")]),
            "ChannelId": np.concatenate([channel, np.full(n_credit, "ChannelId_2")]),
            "Amount": np.concatenate([amount, credit]),
            "Value": np.concatenate([value, np.ceil(-credit)]),
            "ts": np.concatenate([ts, np.minimum(ts[paired] + rng.integers(5, 90, n_credit), end)]),
            "PricingStrategy": np.concatenate([pricing, np.full(n_credit, 2)]),
        }
    )
    frame["FraudResult"] = _fraud(rng, frame["Value"].to_numpy(), n_total, scale)
    _plant_extremes(frame, n_base)

    # The real period's first and last timestamps.
    frame.loc[frame["ts"].idxmin(), "ts"] = start
    frame.loc[frame["ts"].idxmax(), "ts"] = end
    frame = frame.sort_values("ts", kind="stable").reset_index(drop=True)
    frame["TransactionId"] = [
        f"TransactionId_{i}" for i in _distinct(rng, n_total, 1, max(140_000, 2 * n_total))
    ]
    frame["BatchId"] = [f"BatchId_{i}" for i in rng.integers(1, max(140_000, 2 * n_total), n_total)]
    frame["CurrencyCode"] = "UGX"
    frame["CountryCode"] = 256
    frame["TransactionStartTime"] = pd.to_datetime(frame.pop("ts"), unit="s", utc=True)
    return frame.loc[:, list(RAW_COLUMNS)]


def write_csv(transactions: pd.DataFrame, path: str) -> None:
    """Write in the public file's format: ``1000`` not ``1000.0``, ``-67.25`` kept, ISO times with ``Z``."""
    out = transactions.copy()
    for column in ("Amount", "Value"):
        values = out[column].to_numpy()
        whole = values == np.round(values)
        text = values.astype(str)
        text[whole] = values[whole].astype(np.int64).astype(str)
        out[column] = text
    out["TransactionStartTime"] = out["TransactionStartTime"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    out.to_csv(path, index=False)


def _largest_remainder(counts: dict[str, int], total: int) -> dict[str, int]:
    """Scale integer counts to ``total`` keeping their proportions (Hamilton's method)."""
    raw = np.array(list(counts.values()), dtype=float) * total / sum(counts.values())
    floor = np.floor(raw).astype(int)
    order = np.argsort(-(raw - floor), kind="stable")
    floor[order[: total - floor.sum()]] += 1
    return dict(zip(counts, floor.tolist(), strict=True))


def _allocate(
    rng: np.random.Generator, weights: np.ndarray, n_base: int, credit_rate: float, scale: float
) -> np.ndarray:
    """Base rows per customer: at least one each, heavy-tailed, customer 0 the very active one (≈4,091 rows
    in all at full size, counting the credits that follow its purchases)."""
    n_cust = len(weights)
    counts = np.ones(n_cust, dtype=np.int64)
    remaining = n_base - n_cust
    top = 0
    if n_cust > 1 and remaining > 0:
        target_top = round(REAL_SHAPE["top_customer_rows"] * scale / (1 + 1.15 * credit_rate))
        counts[top] += min(max(target_top - 1, 0), remaining // 2)
        remaining = n_base - counts.sum()
        p = weights.copy()
        p[top] = 0.0
        # Keep the very active customer on top: nobody else expects more than a third of its rows.
        for _ in range(5):
            p = np.minimum(p, p.sum() * counts[top] / (3 * remaining))
        counts += rng.multinomial(remaining, p / p.sum())
    elif remaining > 0:
        counts[top] += remaining
    return counts


def _customer_ids(rng: np.random.Generator, n_cust: int, per_customer: np.ndarray) -> np.ndarray:
    """CustomerId_* labels; the most active customer is ``CustomerId_7343`` as in the real data."""
    numbers = _distinct(rng, n_cust, 1, max(7_600, 2 * n_cust), {7343})
    ids = np.array([f"CustomerId_{i}" for i in numbers], dtype=object)
    ids[int(np.argmax(per_customer))] = TOP_CUSTOMER
    return ids


def _distinct(
    rng: np.random.Generator, n: int, low: int, high: int, exclude: set[int] | None = None
) -> np.ndarray:
    pool = np.arange(low, high)
    if exclude:
        pool = pool[~np.isin(pool, list(exclude))]
    return rng.choice(pool, size=n, replace=False)


def _pick_products(rng: np.random.Generator, category: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    product = np.empty(len(category), dtype=object)
    provider = np.empty(len(category), dtype=object)
    for cat in np.unique(category):
        rows = np.flatnonzero(category == cat)
        options = [p for p, (c, _) in PRODUCTS.items() if c == cat and p != CREDIT_PRODUCT]
        chosen = rng.choice(np.array(options), size=len(rows))
        product[rows] = chosen
        provider[rows] = [PRODUCTS[p][1] for p in chosen]
    return product, provider


def _amounts(rng: np.random.Generator, category: np.ndarray, spend: np.ndarray) -> np.ndarray:
    """Positive amounts in round denominations, scaled by each customer's spend level."""
    median = np.empty(len(category))
    sigma = np.empty(len(category))
    for cat, (m, s) in _AMOUNT.items():
        rows = category == cat
        median[rows], sigma[rows] = m, s
    raw = np.exp(np.log(median) + spend + sigma * rng.standard_normal(len(category)))
    step = np.where(raw < 1_000, 50.0, np.where(raw < 10_000, 500.0, 1_000.0))
    amount = np.maximum(np.round(raw / step) * step, 50.0)
    # Airtime is mostly sold in a few round tickets, 1,000 the commonest (the real median amount).
    airtime = category == "airtime"
    tickets = np.array([100.0, 200.0, 250.0, 500.0, 1_000.0, 2_000.0, 5_000.0, 10_000.0])
    edges = np.array([150.0, 225.0, 350.0, 600.0, 1_700.0, 3_500.0, 7_500.0])
    amount[airtime] = tickets[np.searchsorted(edges, raw[airtime])]
    return np.minimum(amount, 9_000_000.0)


def _fraud(rng: np.random.Generator, value: np.ndarray, n_total: int, scale: float) -> np.ndarray:
    """≈0.2% of rows, far more likely on large values."""
    n_fraud = min(round(REAL_SHAPE["fraud_rows"] * scale), n_total)
    weight = np.log1p(value) ** 6
    fraud = np.zeros(n_total, dtype=np.int64)
    fraud[rng.choice(n_total, size=n_fraud, replace=False, p=weight / weight.sum())] = 1
    return fraud


def _plant_extremes(frame: pd.DataFrame, n_base: int) -> None:
    """The real extremes: one 9,880,000 purchase and one -1,000,000 cash-out (financial services)."""
    fin = np.flatnonzero(frame["ProductCategory"].to_numpy()[:n_base] == "financial_services")
    if len(fin) < 2:
        return
    top, bottom = fin[0], fin[1]
    frame.loc[top, ["Amount", "Value", "ChannelId"]] = [
        REAL_SHAPE["amount_max"],
        REAL_SHAPE["amount_max"],
        "ChannelId_3",
    ]
    frame.loc[bottom, ["Amount", "Value", "ChannelId"]] = [
        REAL_SHAPE["amount_min"],
        -REAL_SHAPE["amount_min"],
        "ChannelId_2",
    ]
