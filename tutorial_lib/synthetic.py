"""The synthetic world: the offline default data set, with the truth that real logs never give.

Items fall into C clusters; inside cluster c item i has Zipf popularity
``pi(i | c) = r_i^(-s) / sum_j r_j^(-s)`` (r_i its popularity rank, s = popularity_skew).
User u has K interest clusters c_u1..c_uK. At relative time tau in [0, 1] of the user's
history the interests are weighted

    w_k(tau) = (1 + drift * (2 tau - 1) * a_k) / K,    a_k = linspace(-1, 1, K)

(sum_k w_k = 1; early on the first interest leads, late the last), and the next click is
drawn without replacement from ``p(i | u, tau) = sum_k w_k(tau) pi(i | c_uk)``.
The true current preference is ``p(i | u, tau=1)``. Valid and test are the user's latest
clean clicks; false-positive clicks (popular items outside the user's interests) are
added to TRAIN only, so that denoising and time-awareness both have something to find.

``make_synthetic(...)`` returns ``(InteractionData, SyntheticTruth)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .data import InteractionData, group_by_user, pairs_to_csr, split_interactions, split_sizes

__all__ = ["make_synthetic", "SyntheticTruth"]


@dataclass(eq=False)
class SyntheticTruth:
    """What generated ``make_synthetic``'s data (see the module docstring for the model).

    preference:       (n_users, n_items) true current preference p(i | u, tau=1); rows sum to 1
    user_clusters:    (n_users, K) interest clusters, first = early interest, last = late one
    item_clusters:    (n_items,) cluster of each item
    item_popularity:  (n_items,) pi(i | cluster of i), the Zipf weight inside the cluster
    noise:            (n_users, n_items) CSR mask of the injected false-positive clicks (all in train)
    time_window:      (n_users, 2) first and last day of each user's history; tau = (t - t0) / (t1 - t0)
    drift:            the drift strength in w_k(tau)
    """

    preference: np.ndarray
    user_clusters: np.ndarray
    item_clusters: np.ndarray
    item_popularity: np.ndarray
    noise: sp.csr_matrix
    time_window: np.ndarray
    drift: float

    def interest_weights(self, tau) -> np.ndarray:
        """w_k(tau) for relative times ``tau`` (m,) -> (m, K); the same curve for every user."""
        return _interest_weights(np.asarray(tau, dtype=float), self.user_clusters.shape[1], self.drift)

    def tau(self, user: int, times) -> np.ndarray:
        """Relative time in [0, 1] of ``times`` (days) within ``user``'s history."""
        t0, t1 = self.time_window[user]
        return (np.asarray(times, dtype=float) - t0) / (t1 - t0)


def _interest_weights(tau: np.ndarray, n_interests: int, drift: float) -> np.ndarray:
    """w_k(tau) = (1 + drift (2 tau - 1) a_k) / K with a_k = linspace(-1, 1, K); tau (...,) -> (..., K)."""
    a = np.linspace(-1.0, 1.0, n_interests) if n_interests > 1 else np.zeros(1)
    return (1.0 + drift * (2.0 * tau[..., None] - 1.0) * a) / n_interests


def _zipf_within_clusters(item_clusters: np.ndarray, skew: float, rng) -> np.ndarray:
    """pi(i | c): rank the items of each cluster at random, weight rank^-skew, normalise per cluster."""
    n_items = len(item_clusters)
    rank = np.empty(n_items)
    for c in np.unique(item_clusters):
        members = np.flatnonzero(item_clusters == c)
        rank[members] = rng.permutation(len(members)) + 1
    weight = rank ** -skew
    return weight / np.bincount(item_clusters, weights=weight)[item_clusters]


def _draw_clean_clicks(lengths, taus, user_clusters, cluster_item_probs, drift, rng):
    """Draw each user's clicks in time order, without replacement.

    Click j of user u is argmax_i p(i | u, tau_uj) / E_ui over items not yet taken, with
    E_ui ~ Exp(1) (the "exponential race", equivalent to Gumbel-max: an exact draw from p
    restricted to the remaining items).
    lengths (n_users,), taus (n_users, L) sorted per user, cluster_item_probs (C, n_items).
    Returns items (n_users, L) with -1 beyond each user's length.
    """
    n_users, max_len = taus.shape
    n_items = cluster_item_probs.shape[1]
    user_cluster_probs = cluster_item_probs[user_clusters]                          # (U, K, I)
    taken = np.zeros((n_users, n_items), dtype=bool)
    items = np.full((n_users, max_len), -1, dtype=np.int64)
    for j in range(max_len):
        w = _interest_weights(taus[:, j], user_clusters.shape[1], drift)            # (U, K)
        p = np.einsum("uk,uki->ui", w, user_cluster_probs)                           # (U, I)
        keys = p / rng.standard_exponential(size=p.shape)
        keys[taken] = -1.0
        pick = keys.argmax(axis=1)
        active = j < lengths
        items[active, j] = pick[active]
        taken[np.flatnonzero(active), pick[active]] = True
    return items


def _draw_noise_clicks(n_noise, user_clusters, item_clusters, item_popularity, rng):
    """Popular items outside each user's interest clusters, n_noise[u] distinct ones per user."""
    outside = ~(item_clusters[None, :, None] == user_clusters[:, None, :]).any(axis=2)   # (U, I)
    short = n_noise > outside.sum(axis=1)
    if short.any():
        u = int(np.flatnonzero(short)[0])
        raise ValueError(f"noise_frac asks for {n_noise[u]} false-positive clicks for user {u}, but only "
                         f"{outside[u].sum()} items lie outside the user's interests: lower noise_frac "
                         f"or add items / clusters")
    keys = item_popularity / rng.standard_exponential(size=outside.shape)   # exponential race
    keys[~outside] = -1.0
    ranked = np.argsort(-keys, axis=1)
    users = np.repeat(np.arange(len(n_noise)), n_noise)
    position = np.arange(len(users)) - np.repeat(np.cumsum(n_noise) - n_noise, n_noise)
    return users, ranked[users, position]


def make_synthetic(n_users: int = 600, n_items: int = 400, n_clusters: int = 8,
                   clusters_per_user: int = 2, interactions_per_user: int = 30,
                   drift: float = 0.8, noise_frac: float = 0.2, popularity_skew: float = 1.0,
                   valid_frac: float = 0.1, test_frac: float = 0.2, seed: int = 0,
                   ) -> tuple[InteractionData, SyntheticTruth]:
    """A small seeded world with clustered items, drifting interests and noisy clicks.

    n_clusters item clusters, clusters_per_user interests per user (K), ~Poisson(
    interactions_per_user) clean clicks per user (at least half that many) at sorted uniform
    relative times tau; drift in [0, 1] is the strength of the move from the first interest
    to the last (see w_k(tau) in the module docstring); popularity_skew is the Zipf exponent
    inside a cluster (0 = uniform). Per user, the latest test_frac / valid_frac of the clean
    clicks (at least one each; round to 0 for exactly one) are test / valid, the rest train.
    Then false positives, popular items outside the user's interest clusters at random
    times in the training period, are added to TRAIN so that they make up noise_frac of it.
    Timestamps are days. Everything comes from np.random.default_rng(seed).

    Returns (data, truth): InteractionData (n_users, n_items) with sequences and timestamps,
    and the SyntheticTruth that generated it. The defaults (600 x 400, ~26 train clicks per
    user) are small enough for CPU training in the notebooks.
    """
    _check_synthetic_args(n_users, n_items, n_clusters, clusters_per_user, interactions_per_user,
                          drift, noise_frac, popularity_skew, valid_frac, test_frac)
    rng = np.random.default_rng(seed)
    item_clusters = rng.permutation(np.arange(n_items) % n_clusters)
    item_popularity = _zipf_within_clusters(item_clusters, popularity_skew, rng)
    cluster_item_probs = np.where(item_clusters == np.arange(n_clusters)[:, None], item_popularity, 0.0)
    user_clusters = np.argsort(rng.random((n_users, n_clusters)), axis=1)[:, :clusters_per_user]

    # clean histories, split in time order: the held-out clicks are the latest ones
    users, items, tau = _clean_histories(user_clusters, cluster_item_probs, interactions_per_user, drift, rng)
    labels = split_interactions(users, tau, "temporal", valid_frac, test_frac)
    labels = _at_least_one_held_out(users, labels, valid_frac, test_frac)
    is_train = labels == 0

    # false-positive clicks, at random times in each user's training period
    n_clean_train = np.bincount(users[is_train], minlength=n_users)
    n_noise = split_sizes(n_clean_train, noise_frac / (1.0 - noise_frac))
    noise_users, noise_items = _draw_noise_clicks(n_noise, user_clusters, item_clusters, item_popularity, rng)
    last_train_tau = np.zeros(n_users)
    np.maximum.at(last_train_tau, users[is_train], tau[is_train])
    noise_tau = rng.random(len(noise_users)) * last_train_tau[noise_users]

    # relative time tau -> days in each user's window [start, start + span]
    start, span = rng.uniform(0, 365, n_users), rng.uniform(60, 365, n_users)
    train_users = np.concatenate([users[is_train], noise_users])
    train_items = np.concatenate([items[is_train], noise_items])
    days = start[train_users] + np.concatenate([tau[is_train], noise_tau]) * span[train_users]
    order = np.lexsort((days, train_users))
    shape = (n_users, n_items)
    data = InteractionData(
        train=pairs_to_csr(train_users, train_items, shape),
        valid=pairs_to_csr(users[labels == 1], items[labels == 1], shape),
        test=pairs_to_csr(users[labels == 2], items[labels == 2], shape),
        sequences=group_by_user(train_users[order], train_items[order], n_users),
        timestamps=group_by_user(train_users[order], days[order], n_users),
        name="synthetic")
    w_now = _interest_weights(np.ones(n_users), clusters_per_user, drift)           # (U, K)
    truth = SyntheticTruth(
        preference=np.einsum("uk,uki->ui", w_now, cluster_item_probs[user_clusters]),
        user_clusters=user_clusters, item_clusters=item_clusters, item_popularity=item_popularity,
        noise=pairs_to_csr(noise_users, noise_items, shape),
        time_window=np.stack([start, start + span], axis=1), drift=drift)
    return data, truth


def _clean_histories(user_clusters, cluster_item_probs, interactions_per_user, drift, rng):
    """Each user's clean clicks: ~Poisson(interactions_per_user) of them at sorted uniform tau.

    Returns flat (users, items, tau), grouped by user and in time order within each user.
    """
    n_users = len(user_clusters)
    pool = (cluster_item_probs[user_clusters] > 0).sum(axis=(1, 2))                 # items a user can click
    lengths = np.clip(rng.poisson(interactions_per_user, n_users), max(3, interactions_per_user // 2), pool)
    max_len = lengths.max()
    padding = np.arange(max_len) >= lengths[:, None]
    taus = np.sort(np.where(padding, np.inf, rng.random((n_users, max_len))), axis=1)   # padding last
    clicks = _draw_clean_clicks(lengths, np.where(padding, 1.0, taus), user_clusters,
                                cluster_item_probs, drift, rng)
    return np.repeat(np.arange(n_users), lengths), clicks[~padding], taus[~padding]


def _at_least_one_held_out(users, labels, valid_frac, test_frac):
    """Make sure each user has one valid and one test click when the fraction is non-zero.

    The temporal split rounds; for the shortest users the last click becomes test and the
    one before the test clicks becomes valid, so every user can be evaluated.
    users (n,) sorted, each user's clicks in time order; labels (n,) as split_interactions.
    """
    lengths = np.bincount(users)
    ends = np.cumsum(lengths)
    if test_frac > 0:
        no_test = np.bincount(users[labels == 2], minlength=len(lengths)) == 0
        labels[(ends - 1)[no_test]] = 2
    if valid_frac > 0:
        n_test = np.bincount(users[labels == 2], minlength=len(lengths))
        no_valid = np.bincount(users[labels == 1], minlength=len(lengths)) == 0
        labels[(ends - n_test - 1)[no_valid]] = 1
    no_train = np.bincount(users[labels == 0], minlength=len(lengths)) == 0
    if no_train.any():
        raise ValueError(f"valid_frac={valid_frac} and test_frac={test_frac} leave {int(no_train.sum())} users "
                         f"(histories of {int(lengths[no_train].min())}+ clicks) with no training click; "
                         "lower the fractions, or give users longer histories: raise interactions_per_user "
                         "(at most half a user's interest pool of clusters_per_user * n_items // n_clusters "
                         "items), enlarging the pool first if needed")
    return labels


def _check_synthetic_args(n_users, n_items, n_clusters, clusters_per_user, interactions_per_user,
                          drift, noise_frac, popularity_skew, valid_frac, test_frac):
    for name, value in (("n_users", n_users), ("n_items", n_items), ("n_clusters", n_clusters),
                        ("clusters_per_user", clusters_per_user),
                        ("interactions_per_user", interactions_per_user)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if n_clusters > n_items:
        raise ValueError(f"n_clusters ({n_clusters}) cannot exceed n_items ({n_items})")
    if clusters_per_user >= n_clusters:
        raise ValueError(f"clusters_per_user ({clusters_per_user}) must be below n_clusters ({n_clusters}) "
                         f"so that noise clicks have items outside the user's interests")
    pool = clusters_per_user * (n_items // n_clusters)                # smallest possible pool
    if interactions_per_user > pool // 2:
        raise ValueError(f"interactions_per_user ({interactions_per_user}) must be at most half the "
                         f"{pool} items of a user's {clusters_per_user} interest clusters")
    if not 0 <= drift <= 1:
        raise ValueError(f"drift must be in [0, 1] (weights stay non-negative), got {drift}")
    if not 0 <= noise_frac < 1:
        raise ValueError(f"noise_frac (share of train clicks that are noise) must be in [0, 1), got {noise_frac}")
    if popularity_skew < 0:
        raise ValueError(f"popularity_skew must be >= 0 (0 = uniform within clusters), got {popularity_skew}")
    if not (0 <= valid_frac < 1 and 0 <= test_frac < 1 and valid_frac + test_frac < 0.9):
        raise ValueError(f"valid_frac + test_frac must leave training clicks, got {valid_frac} + {test_frac}")
