"""Point-in-time features: what an open deal already has at the as-of date, and training examples to match.

The feature set, and why each is known at the moment a deal is scored:

- industry, region, product_type, lead_source, sales_rep_id: attributes set when the deal is created;
- amount band: the deal amount, also set at creation (a later edit of the amount is not visible in a single
  snapshot, which is a known limit);
- age band: how long the deal has been open at the as-of date, which the as-of date and the creation date give.

Not used, because they are known only once a deal has closed: `closed_date`, `sales_cycle_days`, `outcome`, and
the stage recorded in a snapshot taken after the as-of date (often the deal's final stage). With several
snapshots the stage at a given age would be valid; with one, it is not.

Training is landmarked: a closed deal contributes one example at each landmark age (0, 30, 60, 90 days by
default) at which it was still open, labelled with its final outcome. An open deal is scored at the largest
landmark not above its age, so the model answers the question it was trained on: "of deals like this one that
were still open at this age, how many were won?"
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.bands import amount_band
from engine.settings import SEGMENT_FIELDS

FEATURE_COLUMNS = (*SEGMENT_FIELDS, "amount_band", "age_band")
LEAKY_COLUMNS = ("closed_date", "sales_cycle_days", "outcome", "deal_stage")
"""Known only after the as-of date for a deal open at it; asserted absent from every feature frame."""


def age_band_labels(landmarks: list[int]) -> list[str]:
    labels = [f"open {low}–{high - 1} days" for low, high in zip(landmarks, landmarks[1:])]
    return [*labels, f"open ≥{landmarks[-1]} days"]


def _age_band(landmark_ages: np.ndarray, landmarks: list[int]) -> np.ndarray:
    labels = np.array(age_band_labels(landmarks), dtype=object)
    return labels[np.searchsorted(landmarks, landmark_ages, side="right") - 1]


def deal_attributes(deals: pd.DataFrame, amount_edges: list[float]) -> pd.DataFrame:
    """The attributes every deal has from creation: segments and amount band."""
    frame = deals[list(SEGMENT_FIELDS)].fillna("Unknown").astype(str)
    frame["amount_band"] = amount_band(deals["deal_amount"], amount_edges)
    return frame


def landmark_examples(history: pd.DataFrame, landmarks: list[int], amount_edges: list[float]) -> pd.DataFrame:
    """Training rows: one per (closed deal, landmark at which it was still open), with `won` and `deal_id`.

    `closed_date` is kept beside the features (not in them) only so the holdout can be split by time.
    """
    attributes = deal_attributes(history, amount_edges)
    cycle = history["sales_cycle_days"].to_numpy(dtype=float)
    parts = []
    for landmark in landmarks:
        still_open = (cycle > landmark) if landmark else np.ones(len(history), dtype=bool)
        part = attributes[still_open].copy()
        part["age_band"] = _age_band(np.full(int(still_open.sum()), landmark), landmarks)
        part["landmark"] = landmark
        part["won"] = history.loc[still_open, "won"].to_numpy(dtype=bool)
        part["deal_id"] = history.loc[still_open, "deal_id"].to_numpy()
        part["closed_date"] = history.loc[still_open, "closed_date"].to_numpy()
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def open_deal_features(open_deals: pd.DataFrame, landmarks: list[int], amount_edges: list[float]) -> pd.DataFrame:
    """Feature rows for open deals (same index), each at the largest landmark not above its age."""
    frame = deal_attributes(open_deals, amount_edges)
    ages = open_deals["age_days"].to_numpy(dtype=int)
    landmark_index = np.searchsorted(landmarks, ages, side="right") - 1
    frame["landmark"] = np.asarray(landmarks)[landmark_index]
    frame["age_band"] = _age_band(frame["landmark"].to_numpy(), landmarks)
    return frame
