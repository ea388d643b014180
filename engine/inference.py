"""Standard errors for the driver model's coefficients that respect its landmarked data.

A deal appears once per landmark it was still open at, so rows of the same deal are not independent. The
sandwich (Huber–White) covariance with scores summed per deal accounts for that; the naive inverse Hessian
would understate every standard error and turn noise into "drivers". The bread is the Hessian of the
penalised objective scikit-learn minimises, so the covariance matches the fitted coefficients.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse


def cluster_robust_covariance(
    design: sparse.spmatrix,
    outcomes: np.ndarray,
    probabilities: np.ndarray,
    clusters: np.ndarray,
    penalty: float,
) -> np.ndarray:
    """Covariance of (intercept, coefficients) of an L2-penalised logistic regression, clustered by `clusters`.

    `design` holds the encoded features without the intercept column; `penalty` is 1 / C.
    """
    rows = design.shape[0]
    with_intercept = sparse.hstack([np.ones((rows, 1)), design], format="csr")
    weights = probabilities * (1 - probabilities)
    hessian = np.asarray((with_intercept.T @ with_intercept.multiply(weights[:, None])).todense())
    hessian[1:, 1:] += penalty * np.eye(hessian.shape[0] - 1)
    residual_scores = with_intercept.multiply((outcomes - probabilities)[:, None]).tocsr()
    _, cluster_index = np.unique(clusters, return_inverse=True)
    membership = sparse.csr_matrix(
        (np.ones(rows), (cluster_index, np.arange(rows))), shape=(int(cluster_index.max()) + 1, rows)
    )
    per_cluster = np.asarray((membership @ residual_scores).todense())
    meat = per_cluster.T @ per_cluster
    bread = np.linalg.pinv(hessian)
    return bread @ meat @ bread
