"""Constant-velocity Kalman filter in local ENU, batched over tracks.

State per track: [east, north, up, v_east, v_north, v_up] (m, m/s). All functions take stacked
arrays (X (T, 6), P (T, 6, 6)) so a frame with many tracks costs a few numpy calls, not a
Python loop per track. Nonlinear measurements (radial speed, bearing, elevation) are scalar
EKF updates.
"""

from __future__ import annotations

import numpy as np

POS = slice(0, 3)
VEL = slice(3, 6)


def predict(X: np.ndarray, P: np.ndarray, dt: np.ndarray, q_horizontal: float,
            q_vertical: float) -> None:
    """Advance every track by its own dt (s), in place. q_*: white-acceleration spectral
    densities (m^2/s^3); the vertical one is smaller because targets climb less than turn."""
    dt = np.maximum(dt, 0.0)
    d = dt[:, None]
    X[:, POS] += d * X[:, VEL]
    dd = dt[:, None, None]
    Ppp, Ppv, Pvp, Pvv = P[:, POS, POS], P[:, POS, VEL], P[:, VEL, POS], P[:, VEL, VEL]
    new_pp = Ppp + dd * (Ppv + Pvp) + dd * dd * Pvv
    new_pv = Ppv + dd * Pvv
    P[:, POS, POS] = new_pp
    P[:, POS, VEL] = new_pv
    P[:, VEL, POS] = np.swapaxes(new_pv, 1, 2)
    q = np.array([q_horizontal, q_horizontal, q_vertical])
    idx = np.arange(3)
    P[:, idx, idx] += (dt**3 / 3.0)[:, None] * q
    P[:, idx, idx + 3] += (dt**2 / 2.0)[:, None] * q
    P[:, idx + 3, idx] += (dt**2 / 2.0)[:, None] * q
    P[:, idx + 3, idx + 3] += dt[:, None] * q


def inv3(S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverses and determinants of a stack of 3x3 matrices (adjugate; faster than LAPACK per
    tiny matrix)."""
    a, b, c = S[..., 0, 0], S[..., 0, 1], S[..., 0, 2]
    d, e, f = S[..., 1, 0], S[..., 1, 1], S[..., 1, 2]
    g, h, i = S[..., 2, 0], S[..., 2, 1], S[..., 2, 2]
    A, B, C = e * i - f * h, f * g - d * i, d * h - e * g
    det = a * A + b * B + c * C
    inv = np.empty_like(S)
    inv[..., 0, 0], inv[..., 1, 0], inv[..., 2, 0] = A, B, C
    inv[..., 0, 1] = c * h - b * i
    inv[..., 1, 1] = a * i - c * g
    inv[..., 2, 1] = b * g - a * h
    inv[..., 0, 2] = b * f - c * e
    inv[..., 1, 2] = c * d - a * f
    inv[..., 2, 2] = a * e - b * d
    inv /= det[..., None, None]
    return inv, det


def position_gate(X: np.ndarray, P: np.ndarray, Z: np.ndarray,
                  R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Squared Mahalanobis distances (T, K) of K position measurements Z (K, 3) with
    covariances R (K, 3, 3) from T tracks, and log det of the innovation covariances.

    Written out for the symmetric 3x3 (cofactors): every (track, plot) pair of a frame in a
    few dozen array operations."""
    nu = Z[None, :, :] - X[:, None, POS]
    n0, n1, n2 = nu[..., 0], nu[..., 1], nu[..., 2]
    Pp = P[:, POS, POS]
    a = Pp[:, 0, 0][:, None] + R[None, :, 0, 0]
    b = Pp[:, 0, 1][:, None] + R[None, :, 0, 1]
    c = Pp[:, 0, 2][:, None] + R[None, :, 0, 2]
    e = Pp[:, 1, 1][:, None] + R[None, :, 1, 1]
    f = Pp[:, 1, 2][:, None] + R[None, :, 1, 2]
    i = Pp[:, 2, 2][:, None] + R[None, :, 2, 2]
    A, B, C = e * i - f * f, c * f - b * i, b * f - c * e
    E, F, II = a * i - c * c, b * c - a * f, a * e - b * b
    det = np.maximum(a * A + b * B + c * C, 1e-300)
    quad = (A * n0 * n0 + E * n1 * n1 + II * n2 * n2
            + 2.0 * (B * n0 * n1 + C * n0 * n2 + F * n1 * n2))
    return quad / det, np.log(det)


def position_update(X: np.ndarray, P: np.ndarray, Z: np.ndarray,
                    R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Updated (X, P) of m tracks each with one position measurement (rows paired)."""
    nu = Z - X[:, POS]
    S = P[:, POS, POS] + R
    S_inv, _ = inv3(S)
    K = P[:, :, POS] @ S_inv  # (m, 6, 3)
    X = X + np.einsum("mij,mj->mi", K, nu)
    P = P - K @ P[:, POS, :]
    return X, 0.5 * (P + np.swapaxes(P, 1, 2))


def scalar_update(X: np.ndarray, P: np.ndarray, H: np.ndarray, nu: np.ndarray,
                  r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """EKF update of m tracks with one scalar measurement each: Jacobian rows H (m, 6),
    innovations nu (m,), measurement variances r (m,)."""
    PH = np.einsum("mij,mj->mi", P, H)
    s = np.einsum("mi,mi->m", H, PH) + r
    K = PH / s[:, None]
    X = X + K * nu[:, None]
    P = P - K[:, :, None] * PH[:, None, :]
    return X, 0.5 * (P + np.swapaxes(P, 1, 2))


def scalar_innovation_variance(P: np.ndarray, H: np.ndarray, r: np.ndarray) -> np.ndarray:
    return np.einsum("mi,mij,mj->m", H, P, H) + r


def radial_speed_jacobian(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predicted radial speeds (m,) and their Jacobians (m, 6): rdot = p.v / |p|."""
    p, v = X[:, POS], X[:, VEL]
    rng = np.maximum(np.sqrt((p * p).sum(axis=1)), 1e-3)  # np.linalg.norm, less overhead
    los = p / rng[:, None]
    rdot = np.einsum("mi,mi->m", los, v)
    H = np.empty_like(X)
    H[:, POS] = (v - rdot[:, None] * los) / rng[:, None]
    H[:, VEL] = los
    return rdot, H


def bearing_jacobian(x: np.ndarray) -> tuple[float, np.ndarray]:
    """True bearing (rad, clockwise from north) of one state and its Jacobian (6,)."""
    e, n = float(x[0]), float(x[1])
    rho2 = max(e * e + n * n, 1e-6)
    H = np.zeros(6)
    H[0], H[1] = n / rho2, -e / rho2
    return float(np.arctan2(e, n)), H


def elevation_jacobian(x: np.ndarray) -> tuple[float, np.ndarray]:
    """Elevation (rad) of one state and its Jacobian (6,)."""
    e, n, u = float(x[0]), float(x[1]), float(x[2])
    rho = max(float(np.hypot(e, n)), 1e-3)
    r2 = rho * rho + u * u
    H = np.zeros(6)
    H[0], H[1], H[2] = -u * e / (rho * r2), -u * n / (rho * r2), rho / r2
    return float(np.arctan2(u, rho)), H


def polar_covariance(range_m: np.ndarray, bearing_rad: np.ndarray, elevation_rad: np.ndarray,
                     sigma_range: np.ndarray, sigma_bearing: np.ndarray,
                     sigma_elevation: np.ndarray) -> np.ndarray:
    """ENU position covariances (K, 3, 3) of K measurements given in range/bearing/elevation."""
    sb, cb = np.sin(bearing_rad), np.cos(bearing_rad)
    se, ce = np.sin(elevation_rad), np.cos(elevation_rad)
    J = np.empty((len(range_m), 3, 3))
    J[:, 0, 0], J[:, 1, 0], J[:, 2, 0] = ce * sb, ce * cb, se
    J[:, 0, 1], J[:, 1, 1], J[:, 2, 1] = range_m * ce * cb, -range_m * ce * sb, 0.0
    J[:, 0, 2], J[:, 1, 2], J[:, 2, 2] = -range_m * se * sb, -range_m * se * cb, range_m * ce
    D = np.column_stack([sigma_range, sigma_bearing, sigma_elevation]) ** 2
    return np.einsum("kij,kj,klj->kil", J, D, J)
