from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.errors import DataValidationError
from ml.load import dataset_digest, read_transactions, validate_transactions
from ml.schema import RAW_COLUMNS


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _write(path: Path, rows: list[dict[str, str]], columns: list[str] | None = None) -> Path:
    columns = columns or list(RAW_COLUMNS)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_real_sample_is_accepted_unchanged(real_head_path: Path) -> None:
    raw = _rows(real_head_path)
    df = read_transactions(real_head_path)
    assert list(df.columns) == list(RAW_COLUMNS)
    assert len(df) == len(raw) == 31
    # Every value survives: text as text, numbers exactly as written.
    assert df["TransactionId"].tolist() == [r["TransactionId"] for r in raw]
    assert df["Amount"].tolist() == [float(r["Amount"]) for r in raw]
    assert df["Value"].tolist() == [float(r["Value"]) for r in raw]
    credit = df.loc[df["TransactionId"] == "TransactionId_10285"].iloc[0]
    assert credit["Amount"] == -67.25 and credit["Value"] == 68
    bills = df[df["ProductCategory"] == "utility_bill"]
    assert (bills["Value"] > bills["Amount"]).all()
    assert (df["AccountId"] == "AccountId_4841").sum() == 8
    assert df["TransactionStartTime"].iloc[0] == pd.Timestamp("2018-11-15T02:18:49Z")
    assert str(df["TransactionStartTime"].dt.tz) == "UTC"
    assert df["CountryCode"].dtype == np.int64 and df["FraudResult"].dtype == np.int64


def test_digest_depends_on_content_only(real_head_path: Path, tmp_path: Path) -> None:
    df = read_transactions(real_head_path)
    copy = _write(tmp_path / "copy.csv", _rows(real_head_path))
    assert dataset_digest(read_transactions(copy)) == dataset_digest(df)
    changed = df.copy()
    changed.loc[0, "Amount"] = 1001.0
    assert dataset_digest(changed) != dataset_digest(df)


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        (
            "TransactionStartTime",
            "15/11/2018 02:18",
            r"column TransactionStartTime is not an ISO-8601 timestamp .* line 5: '15/11/2018 02:18'",
        ),
        (
            "TransactionStartTime",
            "2018-13-45T00:00:00Z",
            r"TransactionStartTime is not an ISO-8601 timestamp .* line 5",
        ),
        ("Amount", "1,000", r"column Amount is not a number in 1 row\(s\) — line 5: '1,000'"),
        ("Amount", "abc", r"column Amount is not a number .* line 5: 'abc'"),
        ("Amount", "inf", r"column Amount is not finite .* line 5: 'inf'"),
        ("Value", "-5", r"column Value is negative"),
        ("FraudResult", "2", r"column FraudResult is not 0 or 1 .* line 5: '2'"),
        ("PricingStrategy", "2.5", r"column PricingStrategy is not an integer .* line 5: '2.5'"),
        ("ProductCategory", "crypto", r"column ProductCategory is not a known category .* line 5: 'crypto'"),
        ("CustomerId", "", r"column CustomerId is empty in 1 row\(s\) — line 5: \(empty\)"),
        ("CustomerId", "   ", r"column CustomerId is blank .* line 5"),
    ],
)
def test_bad_value_names_column_and_line(
    real_head_path: Path, tmp_path: Path, column: str, value: str, expected: str
) -> None:
    rows = _rows(real_head_path)
    rows[3][column] = value  # data row 4 is line 5 of the file (the header is line 1)
    path = _write(tmp_path / "bad.csv", rows)
    with pytest.raises(DataValidationError, match=expected):
        read_transactions(path)


def test_every_bad_row_is_counted_and_the_first_ones_quoted(real_head_path: Path, tmp_path: Path) -> None:
    rows = _rows(real_head_path)
    for row in rows[:8]:
        row["Amount"] = "n/a"
    path = _write(tmp_path / "bad.csv", rows)
    with pytest.raises(
        DataValidationError, match=r"in 8 row\(s\) — line 2: 'n/a', .*line 6: 'n/a' and 3 more"
    ):
        read_transactions(path)


def test_missing_columns_are_named(real_head_path: Path, tmp_path: Path) -> None:
    columns = [c for c in RAW_COLUMNS if c not in ("Amount", "TransactionStartTime")]
    path = _write(tmp_path / "missing.csv", _rows(real_head_path), columns)
    with pytest.raises(DataValidationError, match=r"missing column\(s\) Amount, TransactionStartTime\."):
        read_transactions(path)


def test_duplicate_transaction_ids_are_listed(real_head_path: Path, tmp_path: Path) -> None:
    rows = _rows(real_head_path)
    rows[10]["TransactionId"] = rows[2]["TransactionId"]
    path = _write(tmp_path / "dup.csv", rows)
    with pytest.raises(
        DataValidationError,
        match=r"TransactionId is duplicated .* in 2 row\(s\) — line 4: 'TransactionId_26203', line 12",
    ):
        read_transactions(path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(DataValidationError, match="is empty: expected a header line"):
        read_transactions(path)


def test_header_only(tmp_path: Path) -> None:
    path = _write(tmp_path / "header.csv", [])
    with pytest.raises(DataValidationError, match="has a header but no transactions"):
        read_transactions(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match="no such file"):
        read_transactions(tmp_path / "nope.csv")


def test_not_utf8(real_head_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    text = real_head_path.read_text().replace("CustomerId_4406", "CustomerId_44é6", 1)
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(DataValidationError, match="is not valid UTF-8 .*Re-export the file as UTF-8"):
        read_transactions(path)


def test_truncated_last_line(real_head_path: Path, tmp_path: Path) -> None:
    text = real_head_path.read_text()
    path = tmp_path / "truncated.csv"
    path.write_text(text[: text.rstrip("\n").rfind(",ProviderId_1")])  # cut mid-row
    with pytest.raises(DataValidationError, match=r"line 32"):
        read_transactions(path)


def test_ragged_row_is_a_csv_error(real_head_path: Path, tmp_path: Path) -> None:
    lines = real_head_path.read_text().splitlines()
    lines[5] += ",extra,fields"
    path = tmp_path / "ragged.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataValidationError, match="is not a well-formed CSV"):
        read_transactions(path)


def test_extra_columns_are_ignored(real_head_path: Path, tmp_path: Path) -> None:
    rows = _rows(real_head_path)
    for row in rows:
        row["note"] = "x"
    path = _write(tmp_path / "extra.csv", rows, [*RAW_COLUMNS, "note"])
    assert list(read_transactions(path).columns) == list(RAW_COLUMNS)


def test_validate_accepts_typed_frames(small_transactions: pd.DataFrame) -> None:
    again = validate_transactions(small_transactions)
    pd.testing.assert_frame_equal(again, small_transactions.reset_index(drop=True), check_dtype=False)
