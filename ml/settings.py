"""The one typed settings object of the training job.

Values come from (highest first) command-line flags, ``CREDIT_RISK_*`` environment variables, then the
defaults below. ``python -m ml train --help`` lists them all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, CliImplicitFlag, SettingsConfigDict

TargetMode = Literal["forward", "same-window"]
ModelType = Literal["logistic_regression", "decision_tree", "random_forest", "xgboost", "lightgbm"]
ALL_MODELS: tuple[ModelType, ...] = (
    "logistic_regression",
    "decision_tree",
    "random_forest",
    "xgboost",
    "lightgbm",
)

DEFAULT_ROWS = 95_662  # the size of the public Xente dataset


class RiskBands(BaseModel):
    """Business risk bands on P(high risk): below ``low_below`` approve, above ``high_above`` reject."""

    low_below: float = Field(0.30, gt=0, lt=1)
    high_above: float = Field(0.60, gt=0, lt=1)

    @model_validator(mode="after")
    def _ordered(self) -> RiskBands:
        if not self.low_below < self.high_above:
            raise ValueError(f"risk bands must satisfy low_below < high_above, got {self}")
        return self


class GenerateSettings(BaseSettings):
    """Write a seeded synthetic Xente-shaped transactions CSV (the built-in default data)."""

    model_config = SettingsConfigDict(env_prefix="CREDIT_RISK_")

    rows: int = Field(DEFAULT_ROWS, gt=0, description="number of transactions")
    customers: int | None = Field(
        None,
        gt=0,
        description="number of customers (default: scaled like the real data, 3,742 per 95,662 rows)",
    )
    seed: int = Field(42, description="random seed; the same seed gives the same file")
    out: Path = Field(description="CSV file to write")


class TrainSettings(BaseSettings):
    """Train, evaluate, export to ONNX and register the credit-risk model."""

    model_config = SettingsConfigDict(env_prefix="CREDIT_RISK_", env_nested_delimiter="__")

    # Data
    data: Path | None = Field(None, description="Xente transactions CSV (default: built-in synthetic data)")
    rows: int | None = Field(
        None, gt=0, description=f"rows of built-in synthetic data (default {DEFAULT_ROWS:,}); not with --data"
    )
    seed: int = Field(42, description="seed for the synthetic data, splits, searches and K-Means")

    # Target and observation design
    target: TargetMode = Field(
        "forward",
        description="proxy-target mode: forward (application points, out-of-time test; the only mode that can "
        "become champion) or same-window (the circular diagnostic)",
    )
    horizon_days: int = Field(
        30, gt=0, description="forward: days after an application point whose RFM defines its label"
    )
    oot_days: int = Field(
        14, gt=0, description="forward: length of the out-of-time window (the latest with complete labels)"
    )
    min_high_risk_share: float = Field(
        0.02, gt=0, lt=0.5, description="fail when the high-risk cluster holds a smaller (weighted) share"
    )
    min_customers: int = Field(
        100, ge=1, description="refuse (exit 3) when the training or test split has fewer customers"
    )
    min_positive_customers: int = Field(
        20,
        ge=1,
        description="refuse (exit 3) when a split has fewer customers with a high-risk (or a low-risk) example",
    )
    compare_modes: CliImplicitFlag[bool] = Field(
        True, description="also fit the champion's configuration on the other target mode for the report"
    )

    # Training and selection
    models: list[ModelType] = Field(list(ALL_MODELS), description="model families to tune")
    test_size: float = Field(
        0.2, gt=0, lt=0.5, description="same-window: held-out share of customers (forward tests out of time)"
    )
    cv_folds: int = Field(5, ge=2, description="grouped, stratified cross-validation folds")
    random_search_iter: int = Field(6, ge=1, description="candidates per random search")
    n_jobs: int = Field(-1, description="parallel search workers (-1: all cores)")
    threshold: float = Field(0.5, gt=0, lt=1, description="probability threshold for the 0/1 prediction")
    risk_bands: RiskBands = Field(default_factory=RiskBands)

    # Validation
    bootstrap_samples: int = Field(
        1000, ge=50, description="customer bootstrap resamples for intervals and the champion gate"
    )
    confidence: float = Field(0.95, gt=0.5, lt=1, description="level of every bootstrap interval")
    audit_flag_ratio: float = Field(
        0.95, gt=0, le=1, description="flag a leakage-audit route reaching this share of the model's AUC"
    )
    sensitivity_k: list[int] = Field(
        [2, 3, 4, 5], description="label sensitivity: K-Means cluster counts compared with the default"
    )
    sensitivity_horizons: list[int] = Field(
        [14, 30, 45], description="label sensitivity (forward): horizons in days compared with the default"
    )

    # Export
    parity_tolerance: float = Field(1e-5, gt=0, description="max |sklearn - onnxruntime| on held-out rows")
    score_bins: int = Field(10, ge=2, description="equal-width bins of the score drift reference")
    feature_bins: int = Field(10, ge=2, description="quantile bins per feature for the drift reference")

    # Tracking and registry
    tracking_uri: str | None = Field(
        None,
        description="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else SQLite under --mlflow-dir)",
    )
    mlflow_dir: Path = Field(
        Path("mlruns"), description="local tracking folder (SQLite database + artifacts)"
    )
    experiment: str = Field("credit-risk", description="MLflow experiment name")
    registered_model: str = Field("credit-risk", description="MLflow registered model name")
    alias: str = Field("champion", description="alias that marks the serving model")
    previous_alias: str = Field("previous", description="alias kept by the champion being replaced")
    force: CliImplicitFlag[bool] = Field(
        False, description="move the alias even if the new model is not better"
    )

    # Outputs
    artifacts_dir: Path = Field(Path("artifacts"), description="folder for the exported ONNX model")
    reports_dir: Path = Field(Path("reports"), description="folder for the model card and plots")

    @model_validator(mode="after")
    def _check(self) -> TrainSettings:
        if self.data is not None and self.rows is not None:
            raise ValueError(
                "--rows sizes the built-in synthetic data; with --data the whole file is used. Drop one of them."
            )
        if not self.models:
            raise ValueError("--models needs at least one model family")
        if any(k < 2 for k in self.sensitivity_k) or any(h < 1 for h in self.sensitivity_horizons):
            raise ValueError(
                "--sensitivity-k needs values of at least 2 and --sensitivity-horizons positive days"
            )
        return self

    @property
    def synthetic_rows(self) -> int:
        return self.rows or DEFAULT_ROWS

    @property
    def other_target(self) -> TargetMode:
        return "same-window" if self.target == "forward" else "forward"
