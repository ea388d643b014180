"""Point-in-time features: what an open deal already has at the as-of date, and training examples to match.

The feature set is the refresh's `FeatureSpace` (`engine.fields`): fields known when the deal is created
(industry, region, product, lead source, owner, amount band, and any extra creation-time field of the export
that passed the audit), plus the deal's age band. Not used, because they are known only once a deal has closed
or change over its life: `closed_date`, `sales_cycle_days`, `outcome`, the stage, and every field the audit kept
out. With one snapshot the stage at a given age is not known; with several it would be.

Training is landmarked: a closed deal contributes one example at each landmark age at which it was still open,
labelled with its final outcome. An open deal is scored at the largest landmark not above its age, so the model
answers the question it was trained on: "of deals like this one that were still open at this age, how many were
won?" The landmarks follow the data (quantiles of closed cycle lengths) unless configured.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from salesintel.engine.fields import FeatureSpace

LEAKY_COLUMNS = ("closed_date", "sales_cycle_days", "outcome", "deal_stage")
"""Known only after the as-of date for a deal open at it; asserted absent from every feature frame."""


def age_band_labels(landmarks: tuple[int, ...] | list[int]) -> list[str]:
    labels = [f"open {low}–{high - 1} days" for low, high in zip(landmarks, landmarks[1:])]
    return [*labels, f"open ≥{landmarks[-1]} days"]


def _age_band(landmark_ages: np.ndarray, landmarks) -> np.ndarray:
    labels = np.array(age_band_labels(landmarks), dtype=object)
    return labels[np.searchsorted(landmarks, landmark_ages, side="right") - 1]


def feature_columns(space: FeatureSpace) -> list[str]:
    return [*space.dimensions, "age_band"]


def still_open_at(cycle: np.ndarray, landmark: int) -> np.ndarray:
    """Which closed deals (by days to close) were still open at `landmark` days: every deal at creation."""
    return (cycle > landmark) if landmark else np.ones(len(cycle), dtype=bool)


def landmark_examples(history: pd.DataFrame, space: FeatureSpace) -> pd.DataFrame:
    """Training rows: one per (closed deal, landmark at which it was still open), with `won` and `deal_id`.

    `closed_date` is kept beside the features (not in them) only so the holdout can be split by time.
    """
    attributes = space.attributes(history)
    numbers = space.numbers(history)
    cycle = history["sales_cycle_days"].to_numpy(dtype=float)
    parts = []
    for landmark in space.landmarks:
        still_open = still_open_at(cycle, landmark)
        part = attributes[still_open].copy()
        part["age_band"] = _age_band(np.full(int(still_open.sum()), landmark), space.landmarks)
        for name, values in numbers.items():
            part[name] = values[still_open]
        part["landmark"] = landmark
        part["won"] = history.loc[still_open, "won"].to_numpy(dtype=bool)
        part["deal_id"] = history.loc[still_open, "deal_id"].to_numpy()
        part["closed_date"] = history.loc[still_open, "closed_date"].to_numpy()
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def open_deal_features(open_deals: pd.DataFrame, space: FeatureSpace) -> pd.DataFrame:
    """Feature rows for open deals (same index), each at the largest landmark not above its age."""
    frame = space.attributes(open_deals)
    ages = open_deals["age_days"].to_numpy(dtype=int)
    landmark_index = np.searchsorted(space.landmarks, ages, side="right") - 1
    frame["landmark"] = np.asarray(space.landmarks)[landmark_index]
    frame["age_band"] = _age_band(frame["landmark"].to_numpy(), space.landmarks)
    for name, values in space.numbers(open_deals).items():
        frame[name] = values
    return frame
