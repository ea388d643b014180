"""The lean floor for `salesintel refresh`: the essential work in one pass with pandas, NumPy and scikit-learn.

What any refresh must do, written as plainly and quickly as possible, to measure salesintel's overhead against:
read the newest snapshot's deals from the store (the Parquet copy it keeps, as salesintel does), split them as of a
date, build landmark rows (one per closed deal and age at which it was still open) on the same sample of at most
50k closed deals, fit one HistGradientBoostingClassifier with native categories, score the open deals at their
age, compute each field's win rate per level, and write one score row per open deal in one transaction.

It does none of what makes salesintel's numbers trustworthy — no field audit, no second family, no time-ordered
validation or calibration, no bootstrap intervals, no drivers, no reasons, no anomalies, trend or drift — which is
why it is a floor and not a competitor.

    .venv/bin/python bench/refresh_floor.py STORE.db --as-of 2024-06-01
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import sqlite3
import sys
import time

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from sklearn.ensemble import HistGradientBoostingClassifier

FIELDS = ("industry", "region", "product_type", "lead_source", "sales_rep_id")
SAMPLE_DEALS = 50_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store")
    parser.add_argument("--as-of", required=True)
    options = parser.parse_args()
    start = time.perf_counter()
    connection = sqlite3.connect(options.store)
    snapshot_id, blob = connection.execute(
        "SELECT snapshot_id, data FROM snapshot_frames ORDER BY snapshot_id DESC LIMIT 1"
    ).fetchone()
    deals = pq.read_table(io.BytesIO(blob)).to_pandas()
    cut = pd.Timestamp(options.as_of)
    created, closed = pd.to_datetime(deals["created_date"]), pd.to_datetime(deals["closed_date"])
    is_closed = closed.notna() & (closed <= cut) & deals["outcome"].notna()
    history, open_deals = deals[is_closed], deals[(created <= cut) & ~is_closed]
    won = history["outcome"].eq("Won").to_numpy()
    cycles = history["sales_cycle_days"].to_numpy(dtype=float)
    landmarks = [0, *np.unique(np.round(np.quantile(cycles, [0.33, 0.67, 0.9])).astype(int))]
    sample = np.random.default_rng(0).permutation(len(history))[:SAMPLE_DEALS]
    codes = {f: pd.Categorical(deals[f]).categories for f in FIELDS}

    def matrix(frame: pd.DataFrame, ages: np.ndarray) -> np.ndarray:
        columns = [pd.Categorical(frame[f], categories=codes[f]).codes for f in FIELDS]
        return np.column_stack([*columns, frame["deal_amount"].to_numpy(dtype=float), ages]).astype(float)

    rows, labels = [], []
    for landmark in landmarks:
        still_open = sample[cycles[sample] > landmark] if landmark else sample
        rows.append(matrix(history.iloc[still_open], np.full(len(still_open), landmark)))
        labels.append(won[still_open])
    model = HistGradientBoostingClassifier(
        max_iter=100, max_leaf_nodes=8, categorical_features=[True] * 5 + [False] * 2, random_state=0
    )
    model.fit(np.vstack(rows), np.concatenate(labels))
    ages = (cut - pd.to_datetime(open_deals["created_date"])).dt.days.to_numpy()
    scored_age = np.asarray(landmarks)[np.searchsorted(landmarks, ages, side="right") - 1]
    p_win = model.predict_proba(matrix(open_deals, scored_age))[:, 1]
    rates = {f: pd.Series(won).groupby(history[f].to_numpy()).agg(["mean", "size"]) for f in FIELDS}
    with connection:
        connection.execute("CREATE TEMP TABLE floor_scores (deal_id TEXT, p_win REAL, risk REAL, amount REAL)")
        connection.executemany(
            "INSERT INTO floor_scores VALUES (?, ?, ?, ?)",
            zip(
                open_deals["deal_id"].tolist(), p_win.tolist(), (1 - p_win).tolist(), open_deals["deal_amount"].tolist()
            ),
        )
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"floor: {len(deals):,} deals (snapshot #{snapshot_id}), {len(open_deals):,} scored, "
        f"{sum(len(r) for r in rates.values())} segment rates in {seconds:.2f} s; peak RSS {peak:,.0f} MiB"
    )


if __name__ == "__main__":
    main()
    # End without tearing the interpreter down, as the salesintel command does (bot/launch.py): freeing every object
    # at exit (about 0.6 s after a million-deal refresh) is not work a lean floor should carry.
    sys.stdout.flush()
    os._exit(0)
