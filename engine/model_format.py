"""How a trained model is kept in the store: skops, never pickle.

Loading a pickle can run any code its author put in it, so a store file (a backup, a copied database) must never be
unpickled. skops rebuilds only the types it is told to trust: sklearn's own, numpy's, and the short list of
salesintel's records below. A blob naming anything else is refused, and the model is retrained; so is a blob in the
pickle format older salesintels wrote (it is never loaded).
"""

from __future__ import annotations

import logging

import skops.io as sio

from salesintel.engine.model import TrainedModel

log = logging.getLogger("salesintel.engine")

PREFIX = b"skops1:"
"""Marks a blob written in this format (an older store holds pickles, which never start with it)."""

TRUSTED_TYPES = frozenset(
    {
        "datetime.date",
        "functools.partial",
        "sklearn.utils.validation.check_array",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "salesintel.engine.drivers.Driver",
        "salesintel.engine.encoding.Encoding",
        "salesintel.engine.families.BoostedModel",
        "salesintel.engine.families.LogisticModel",
        "salesintel.engine.fields.Exclusion",
        "salesintel.engine.fields.FeatureSpace",
        "salesintel.engine.fields.FieldInfo",
        "salesintel.engine.model.TrainedModel",
    }
)
"""Beyond what skops trusts by default: the types a `TrainedModel` is made of (both model families)."""


def encode(model: TrainedModel) -> bytes:
    return PREFIX + sio.dumps(model)


def decode(blob: bytes, version: str) -> TrainedModel | None:
    """The model, or None (with a warning) when the blob is not in this format or names a type outside the trusted
    list: the caller then trains a new version."""
    if not blob.startswith(PREFIX):
        log.warning(
            "model version %s was saved by an older salesintel and cannot be loaded: training a new version "
            "(models stored as pickles are never loaded: loading a pickle can run code)",
            version,
        )
        return None
    data = blob[len(PREFIX) :]
    named = set(sio.get_untrusted_types(data=data))
    unknown = named - TRUSTED_TYPES
    if unknown:
        log.warning(
            "model version %s names types salesintel does not trust (%s): training a new version",
            version,
            ", ".join(sorted(unknown)),
        )
        return None
    model = sio.loads(data, trusted=sorted(named))
    return model if isinstance(model, TrainedModel) else None
