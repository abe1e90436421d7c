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

# Facts of the full public file as printed by public analyses, each with where it was read, for the
# synthetic-vs-real table (:func:`shape_comparison`). "Public analyses" are the figures the project was given
# with its reference sample; the notebooks are public EDA notebooks of the 10 Academy credit-scoring
# challenge run on the full 95,662-row file (repository and path named).
_NB1 = "olaniSiyum/credit-scoring-model notebooks/EDA.ipynb"
_NB2 = "Selam46/BatiBank-CreditRisk notebooks/eda.ipynb"
_NB3 = "Eyoab11/Bank-credit-scoring notebooks/1.0-eda.ipynb"
_GIVEN = "public analyses (project reference notes)"
REAL_FACTS: dict[str, tuple[float, str]] = {
    "rows": (95_662, _GIVEN),
    "customers": (3_742, _GIVEN),
    "accounts": (3_633, _NB2),
    "subscriptions": (3_627, _NB2),
    "batches": (94_809, _NB2),
    "distinct timestamps": (94_556, _NB2),
    "rows on the most repeated timestamp": (17, _NB2),
    "Amount mean": (6_717.85, _GIVEN),
    "Amount std": (123_306.80, "Amen-Zelealem/Bati-Bank-Credit-Scoring-Model notebooks/README.md"),
    "Amount 25%": (-50.0, _NB1),
    "Amount median": (1_000.0, _GIVEN),
    "Amount 75%": (2_800.0, _NB1),
    "Value mean": (9_900.58, _NB1),
    "Value 25%": (275.0, _NB1),
    "Value median": (1_000.0, _NB1),
    "Value 75%": (5_000.0, _NB1),
    "rows with Amount < 0": (38_189, _NB3),
    "ProviderId_4 rows": (38_189, _NB1),
    "ProviderId_6 rows": (34_186, _NB1),
    "ProductId_6 rows": (32_635, _NB1),
    "ProductId_3 rows": (24_344, _NB1),
    "ChannelId_3 rows": (56_935, _NB1),
    "ChannelId_2 rows": (37_141, _NB1),
    "PricingStrategy 2 rows": (79_848, _NB1),
    "PricingStrategy 4 rows": (13_562, _NB1),
    "PricingStrategy 1 rows": (1_867, _NB1),
    "PricingStrategy 0 rows": (385, _NB1),
    "FraudResult 1 rows": (193, _GIVEN),
    "AccountId_4841 rows": (30_893, _GIVEN),
    "CustomerId_7343 rows": (4_091, _GIVEN),
}


def shape_facts(frame: pd.DataFrame) -> dict[str, float]:
    """The facts of :data:`REAL_FACTS`, measured on a Xente-shaped frame."""
    amount, value = frame["Amount"], frame["Value"]
    counts = {c: frame[c].value_counts() for c in ("ProviderId", "ProductId", "ChannelId", "PricingStrategy")}
    return {
        "rows": len(frame),
        "customers": frame["CustomerId"].nunique(),
        "accounts": frame["AccountId"].nunique(),
        "subscriptions": frame["SubscriptionId"].nunique(),
        "batches": frame["BatchId"].nunique(),
        "distinct timestamps": frame["TransactionStartTime"].nunique(),
        "rows on the most repeated timestamp": int(frame["TransactionStartTime"].value_counts().iloc[0]),
        "Amount mean": amount.mean(),
        "Amount std": amount.std(),
        "Amount 25%": amount.quantile(0.25),
        "Amount median": amount.median(),
        "Amount 75%": amount.quantile(0.75),
        "Value mean": value.mean(),
        "Value 25%": value.quantile(0.25),
        "Value median": value.median(),
        "Value 75%": value.quantile(0.75),
        "rows with Amount < 0": int((amount < 0).sum()),
        "ProviderId_4 rows": int(counts["ProviderId"].get("ProviderId_4", 0)),
        "ProviderId_6 rows": int(counts["ProviderId"].get("ProviderId_6", 0)),
        "ProductId_6 rows": int(counts["ProductId"].get("ProductId_6", 0)),
        "ProductId_3 rows": int(counts["ProductId"].get("ProductId_3", 0)),
        "ChannelId_3 rows": int(counts["ChannelId"].get("ChannelId_3", 0)),
        "ChannelId_2 rows": int(counts["ChannelId"].get("ChannelId_2", 0)),
        **{f"PricingStrategy {k} rows": int(counts["PricingStrategy"].get(k, 0)) for k in (2, 4, 1, 0)},
        "FraudResult 1 rows": int(frame["FraudResult"].sum()),
        "AccountId_4841 rows": int((frame["AccountId"] == CREDIT_ACCOUNT).sum()),
        "CustomerId_7343 rows": int((frame["CustomerId"] == TOP_CUSTOMER).sum()),
    }


def shape_comparison(frame: pd.DataFrame) -> pd.DataFrame:
    """Synthetic against real, fact by fact: real value, its source, synthetic value, ratio."""
    measured = shape_facts(frame)
    rows = [
        {
            "fact": fact,
            "real": real,
            "synthetic": measured[fact],
            "ratio": measured[fact] / real,
            "source": src,
        }
        for fact, (real, src) in REAL_FACTS.items()
    ]
    return pd.DataFrame(rows)


CREDIT_ACCOUNT = "AccountId_4841"
CREDIT_SUBSCRIPTION = "SubscriptionId_3829"
TOP_CUSTOMER = "CustomerId_7343"

# ProductId -> (ProductCategory, weight within its category, {ProviderId: share}): 23 products, 6 providers.
# Every ProviderId_4 row is a credit or cash-out (in the public data ProviderId_4 and Amount < 0 both count
# 38,189 rows); ProductId_6 is the AccountId_4841 credit and some cash-outs. Weights follow the sourced
# counts where there are any (ProductId_3: 24,344 airtime rows), else a plausible split.
PRODUCTS: dict[str, tuple[str, float, dict[str, float]]] = {
    "ProductId_3": ("airtime", 0.54, {"ProviderId_6": 0.55, "ProviderId_5": 0.3, "ProviderId_3": 0.15}),
    "ProductId_10": ("airtime", 0.34, {"ProviderId_6": 1.0}),
    "ProductId_1": ("airtime", 0.065, {"ProviderId_6": 1.0}),
    "ProductId_4": ("airtime", 0.055, {"ProviderId_3": 1.0}),
    "ProductId_15": (
        "financial_services",
        0.8,
        {"ProviderId_1": 0.6, "ProviderId_3": 0.25, "ProviderId_5": 0.15},
    ),
    "ProductId_14": ("financial_services", 0.198, {"ProviderId_1": 1.0}),
    "ProductId_7": ("financial_services", 0.002, {"ProviderId_2": 1.0}),
    "ProductId_21": ("utility_bill", 0.5, {"ProviderId_1": 0.5, "ProviderId_5": 0.5}),
    "ProductId_22": ("utility_bill", 0.3, {"ProviderId_3": 1.0}),
    "ProductId_23": ("utility_bill", 0.2, {"ProviderId_5": 1.0}),
    "ProductId_11": ("data_bundles", 1.0, {"ProviderId_6": 0.7, "ProviderId_5": 0.3}),
    "ProductId_19": ("tv", 0.5, {"ProviderId_6": 1.0}),  # a tv product in the real rows
    "ProductId_24": ("tv", 0.3, {"ProviderId_5": 1.0}),
    "ProductId_8": ("tv", 0.2, {"ProviderId_3": 1.0}),
    "ProductId_20": ("ticket", 0.6, {"ProviderId_5": 1.0}),
    "ProductId_27": ("ticket", 0.4, {"ProviderId_3": 1.0}),
    "ProductId_13": ("movies", 0.5, {"ProviderId_5": 1.0}),
    "ProductId_16": ("movies", 0.5, {"ProviderId_5": 1.0}),
    "ProductId_5": ("transport", 1.0, {"ProviderId_5": 1.0}),
    "ProductId_12": ("other", 1.0, {"ProviderId_5": 1.0}),
}
CREDIT_PRODUCT, CREDIT_PROVIDER = "ProductId_6", "ProviderId_4"
# Cash-outs (negative financial services, ProviderId_4): ProductId_6 from accounts other than 4841, and two more.
CASH_OUT_PRODUCTS = {"ProductId_6": 0.24, "ProductId_9": 0.46, "ProductId_2": 0.30}
CASH_OUT_SHARE = 0.5  # of the financial-services rows that are not 4841 credits (39.9% negative rows in all)

# Typical amounts (UGX) per category: lognormal median and spread before the customer's spend level.
_AMOUNT = {
    "airtime": (1_150.0, 0.9),
    "data_bundles": (1_500.0, 0.8),
    "financial_services": (3_000.0, 1.6),
    "utility_bill": (10_000.0, 0.9),
    "tv": (15_000.0, 0.6),
    "ticket": (20_000.0, 0.7),
    "movies": (8_000.0, 0.5),
    "transport": (30_000.0, 0.5),
    "other": (40_000.0, 0.5),
}
LARGE_TRANSFER_SHARE = 0.012  # financial-services rows in the million-UGX tail that makes the real spread
# How long a churner's behaviour drifts before they stop: smaller tickets, more airtime, night hours and
# pricing strategy 4 — visible in the features while the customer is still active.
DECLINE_DAYS = 14
LIFETIME_DAYS = 75  # mean time from joining to stopping at propensity 0
HAZARD_SLOPE = 0.8  # how much faster a higher propensity stops: lifetime scale exp(-HAZARD_SLOPE * z)
EXISTING_SHARE = 0.5  # customers already active when the period starts
SHARED_ACCOUNT_SHARE = 0.03  # customers using another customer's account (3,633 accounts, 3,742 customers)
SAME_BATCH_SHARE = 0.009  # rows in their previous row's batch (94,809 batches for 95,662 rows)

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
    # A steady-state population: part of it was already active when the period starts, the rest joins at an
    # even pace. Customers stop at a constant hazard, faster the higher their propensity z (an exponential
    # lifetime), so the customers still active at the start are the long-lived ones — their z follows the
    # survivors' distribution, N(-s, 1) for a lifetime scale of exp(-s z), s = HAZARD_SLOPE. New and leaving customers then
    # balance and the mix of behaviour does not drift over the period.
    start = pd.Timestamp(spec.start).value // 10**9
    end = pd.Timestamp(spec.end).value // 10**9
    span = end - start
    existing = rng.random(n_cust) < EXISTING_SHARE
    z = rng.standard_normal(n_cust) - HAZARD_SLOPE * existing
    spend = rng.normal(0.35, 0.45, n_cust) - 0.5 * z  # log-multiplier on amounts
    joined = np.where(existing, start, start + (rng.random(n_cust) * span * 0.97).astype(np.int64))
    left = joined + rng.exponential(LIFETIME_DAYS * 86_400 * np.exp(-HAZARD_SLOPE * z)).astype(np.int64)
    # Customer 0 is the very active one (see _allocate): active over the whole period, like CustomerId_7343.
    joined[0], left[0] = start, end
    churns = left < end
    left = np.clip(left, joined + 3_600, end)

    # Activity is a heavy-tailed rate per active day, only weakly tied to the propensity: how often a customer
    # transacts says little about whether they will stop; how they transact while winding down says more.
    rate = rng.lognormal(0.0, 1.1, n_cust) * np.exp(-0.2 * z)
    per_customer = _allocate(rng, rate * (left - joined) / 86_400, n_base, n_credit / max(n_base, 1), scale)

    # --- Base rows: owner and time, then behaviour from the propensity and the wind-down phase.
    owner = np.repeat(np.arange(n_cust), per_customer)
    zr = z[owner]
    lo, hi = joined[owner], left[owner]
    # Wind-down: over the last DECLINE_DAYS before a churner stops, behaviour drifts towards disengagement.
    day = _days(rng, lo, hi)
    phase = np.where(churns[owner], np.clip(1.0 - (hi - day) / (DECLINE_DAYS * 86_400), 0.0, 1.0), 0.0)
    ts = _times(rng, day, lo, hi, night_share=_sigmoid(1.4 * zr + 4.0 * phase - 2.6))

    key = 1.0 * zr + 5.0 * phase + rng.logistic(0.0, 1.0, n_base)
    category = np.empty(n_base, dtype=object)
    category[np.argsort(key, kind="stable")] = np.repeat(
        _CATEGORY_ORDER, [base_counts[c] for c in _CATEGORY_ORDER]
    )

    # Cash-outs: half the financial-services rows that are not 4841 credits are negative, on ProviderId_4.
    cash_out = (category == "financial_services") & (rng.random(n_base) < CASH_OUT_SHARE)
    product, provider = _pick_products(rng, category, cash_out)
    channel = rng.choice(
        np.array(["ChannelId_3", "ChannelId_5", "ChannelId_1"]), size=n_base, p=[0.972, 0.0182, 0.0098]
    )
    channel[cash_out] = np.where(rng.random(int(cash_out.sum())) < 0.86, "ChannelId_2", "ChannelId_3")
    amount = _amounts(rng, category, spend[owner] - 2.5 * phase, large_ok=~cash_out)
    amount[cash_out] = -np.minimum(np.maximum(np.round(amount[cash_out] * 0.4, -1), 10.0), 900_000.0)
    fee = np.where(category == "utility_bill", np.round(amount * rng.uniform(0.02, 0.1, n_base), -1), 0.0)
    value = np.abs(amount) + fee
    pricing = np.where(
        rng.random(n_base) < 0.19 + 0.06 * (zr > 1) + 0.35 * phase,
        4,
        rng.choice(np.array([2, 1, 0]), size=n_base, p=[0.962, 0.031, 0.007]),
    )

    # --- Credits: seconds after a ChannelId_3 purchase, from AccountId_4841, 1-5% of the purchase.
    eligible = np.flatnonzero(
        (channel == "ChannelId_3") & (category != "financial_services") & (amount > 0) & (ts <= end - 90)
    )
    n_credit = min(n_credit, len(eligible))
    paired = np.sort(rng.choice(eligible, size=n_credit, replace=False))
    credit = -np.round(amount[paired] * rng.uniform(0.01, 0.06, n_credit) * 4) / 4
    credit = np.minimum(credit, -2.0)

    # --- Assemble base rows then credit rows; a credit keeps its purchase's customer.
    customer_ids = _customer_ids(rng, n_cust, per_customer)
    account = _shared_ids(rng, "AccountId", n_cust, {4841})
    subscription = _shared_ids(rng, "SubscriptionId", n_cust, {3829})
    n_total = n_base + n_credit
    frame = pd.DataFrame(
        {
            "CustomerId": customer_ids[np.concatenate([owner, owner[paired]])],
            "AccountId": np.concatenate([account[owner], np.full(n_credit, CREDIT_ACCOUNT)]),
            "SubscriptionId": np.concatenate([subscription[owner], np.full(n_credit, CREDIT_SUBSCRIPTION)]),
            "ProviderId": np.concatenate([provider, np.full(n_credit, CREDIT_PROVIDER)]),
            "ProductId": np.concatenate([product, np.full(n_credit, CREDIT_PRODUCT)]),
            "ProductCategory": np.concatenate([category, np.full(n_credit, "financial_services")]),
            "ChannelId": np.concatenate([channel, np.full(n_credit, "ChannelId_2")]),
            "Amount": np.concatenate([amount, credit]),
            "Value": np.concatenate([value, np.ceil(-credit)]),
            "ts": np.concatenate([ts, ts[paired] + rng.integers(5, 90, n_credit)]),
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
    frame["BatchId"] = _batches(rng, frame["CustomerId"].to_numpy(), n_total)
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


def _pick_products(
    rng: np.random.Generator, category: np.ndarray, cash_out: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """ProductId and ProviderId per row from the weights of :data:`PRODUCTS` (cash-outs: ProviderId_4)."""
    product = np.empty(len(category), dtype=object)
    provider = np.empty(len(category), dtype=object)
    for cat in np.unique(category):
        rows = np.flatnonzero((category == cat) & ~cash_out)
        options = {p: (w, providers) for p, (c, w, providers) in PRODUCTS.items() if c == cat}
        names = np.array(list(options))
        weights = np.array([w for w, _ in options.values()])
        chosen = rng.choice(names, size=len(rows), p=weights / weights.sum())
        product[rows] = chosen
        for name in names:
            picked = rows[chosen == name]
            shares = options[name][1]
            provider[picked] = rng.choice(np.array(list(shares)), size=len(picked), p=list(shares.values()))
    rows = np.flatnonzero(cash_out)
    product[rows] = rng.choice(
        np.array(list(CASH_OUT_PRODUCTS)), size=len(rows), p=list(CASH_OUT_PRODUCTS.values())
    )
    provider[rows] = CREDIT_PROVIDER
    return product, provider


def _shared_ids(rng: np.random.Generator, prefix: str, n_cust: int, exclude: set[int]) -> np.ndarray:
    """One id per customer, except that a few customers share another customer's (accounts, subscriptions)."""
    ids = _distinct(rng, n_cust, 1, max(5_000, 2 * n_cust), exclude)
    shared = np.flatnonzero(rng.random(n_cust) < SHARED_ACCOUNT_SHARE)
    shared = shared[shared > 0]
    if len(shared):
        ids[shared] = ids[rng.integers(0, n_cust, len(shared))]
    return np.array([f"{prefix}_{i}" for i in ids])


def _batches(rng: np.random.Generator, customers: np.ndarray, n_total: int) -> np.ndarray:
    """Nearly one BatchId per transaction; a few rows join the batch of their customer's previous row."""
    numbers = _distinct(rng, n_total, 1, max(140_000, 2 * n_total))
    order = np.lexsort((np.arange(n_total), customers))  # rows are in time order: by customer, then time
    same_customer = np.r_[False, customers[order][1:] == customers[order][:-1]]
    join = same_customer & (rng.random(n_total) < SAME_BATCH_SHARE)
    sorted_numbers = numbers[order]
    for i in np.flatnonzero(join):  # in order, so a run of joins shares one batch
        sorted_numbers[i] = sorted_numbers[i - 1]
    numbers[order] = sorted_numbers
    return np.array([f"BatchId_{i}" for i in numbers])


def _amounts(
    rng: np.random.Generator, category: np.ndarray, spend: np.ndarray, large_ok: np.ndarray
) -> np.ndarray:
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
    # The tail: a few financial-services transfers of a million UGX and more.
    large = (category == "financial_services") & large_ok & (rng.random(len(category)) < LARGE_TRANSFER_SHARE)
    amount[large] = np.round(np.exp(rng.normal(np.log(1_500_000.0), 0.8, int(large.sum()))), -3)
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


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _days(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """A uniformly drawn instant in ``[lo, hi]`` per row: the day a transaction falls on."""
    return lo + ((hi - lo) * rng.random(len(lo))).astype(np.int64)


def _times(
    rng: np.random.Generator, day: np.ndarray, lo: np.ndarray, hi: np.ndarray, night_share: np.ndarray
) -> np.ndarray:
    """Second of each transaction: its day's midnight plus an hour from the daily profile (night with
    probability ``night_share``, else around 13:00). A time outside the customer's ``[lo, hi]`` is drawn
    again (another day, another hour) rather than clipped, so no timestamp collects the overflow; the few
    left after several draws take a uniform time in the window."""
    ts = np.empty(len(day), dtype=np.int64)
    todo = np.arange(len(day))
    current = day
    for _ in range(8):
        midnight = current - current % 86_400
        n = len(todo)
        hour = np.where(
            rng.random(n) < night_share[todo],
            rng.integers(0, 5, n),
            np.clip(rng.normal(13.0, 3.5, n), 6, 23).astype(np.int64),
        )
        candidate = midnight + hour * 3_600 + rng.integers(0, 3_600, n)
        fits = (candidate >= lo[todo]) & (candidate <= hi[todo])
        ts[todo[fits]] = candidate[fits]
        todo = todo[~fits]
        if not len(todo):
            return ts
        current = _days(rng, lo[todo], hi[todo])
    ts[todo] = _days(rng, lo[todo], hi[todo])
    return ts
