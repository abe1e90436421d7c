"""Errors of the training job. Each says what was wrong and how to fix it, and carries its exit code."""

from __future__ import annotations


class TrainingError(Exception):
    """Base class: the job stops, nothing is registered, the process exits with ``exit_code``."""

    exit_code = 1


class DataValidationError(TrainingError):
    """The input transactions do not satisfy the Xente schema."""

    exit_code = 2


class TargetError(TrainingError):
    """The RFM proxy target cannot be built (too few customers, a degenerate high-risk cluster, ...)."""

    exit_code = 3


class ExportParityError(TrainingError):
    """The ONNX graph does not reproduce the scikit-learn pipeline within tolerance."""

    exit_code = 4


class RegistryError(TrainingError):
    """The MLflow registry refused or contradicted an operation."""

    exit_code = 5
