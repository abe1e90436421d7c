"""The command line as a user runs it: exit codes, messages, and nothing registered on bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ml.load import read_transactions

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(cwd)}
    return subprocess.run(
        [sys.executable, "-m", "ml", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_generate_writes_a_valid_seeded_file(tmp_path: Path) -> None:
    result = run_cli("generate", "--rows", "500", "--out", "data/x.csv", "--seed", "3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "wrote 500 transactions" in result.stderr
    df = read_transactions(tmp_path / "data" / "x.csv")
    assert len(df) == 500
    again = run_cli("generate", "--rows", "500", "--out", "y.csv", "--seed", "3", cwd=tmp_path)
    assert again.returncode == 0
    assert (tmp_path / "data" / "x.csv").read_bytes() == (tmp_path / "y.csv").read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("train", "--target", "backward"), "--target: Input should be 'forward' or 'same-window'"),
        (("train", "--horizon-days", "0"), "--horizon-days: Input should be greater than 0"),
        (("train", "--sensitivity-k", "[1, 3]"), "--sensitivity-k needs values of at least 2"),
        (("train", "--rows", "0"), "--rows: Input should be greater than 0"),
        (("train", "--rows", "100", "--data", "x.csv"), "--rows sizes the built-in synthetic data"),
        (("generate", "--rows", "10"), "the following arguments are required: --out"),
        (
            ("train", "--models", '["svm"]'),
            "--models: Input should be 'logistic_regression', 'decision_tree'",
        ),
        (
            ("train", "--risk-bands.low-below", "0.7"),
            "--risk-bands: risk bands must satisfy low_below < high_above",
        ),
    ],
)
def test_bad_arguments_exit_2_with_a_message(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_data_exits_non_zero_and_registers_nothing(real_head_path: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    lines = real_head_path.read_text().splitlines()
    lines[7] = lines[7].replace("2018-11-15T03:44:31Z", "yesterday")
    bad.write_text("\n".join(lines) + "\n")
    result = run_cli("train", "--data", str(bad), cwd=tmp_path)
    assert result.returncode == 2
    assert "column TransactionStartTime is not an ISO-8601 timestamp" in result.stderr
    assert "line 8: 'yesterday'" in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "artifacts").exists()


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("forward", "the forward design needs more than 74 days"),
        ("same-window", "customers"),
    ],
)
def test_too_little_data_is_refused_with_exit_3(
    real_head_path: Path, tmp_path: Path, target: str, message: str
) -> None:
    """31 real rows (18 customers, a few hours): nothing trains, nothing is registered, in either mode."""
    result = run_cli("train", "--data", str(real_head_path), "--target", target, cwd=tmp_path)
    assert result.returncode == 3, result.stderr[-2000:]
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "artifacts").exists()


def test_a_small_but_valid_history_is_refused_naming_the_shortfall(tmp_path: Path) -> None:
    result = run_cli("train", "--rows", "4000", "--min-customers", "150", cwd=tmp_path)
    assert result.returncode == 3
    assert "too little data to train and validate the forward model" in result.stderr
    assert "customers (minimum 150)" in result.stderr and "--min-customers" in result.stderr
    assert not (tmp_path / "mlruns").exists()
