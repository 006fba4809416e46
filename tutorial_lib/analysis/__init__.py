"""What the notebooks' figures show, computed; the plots live in ``tutorial_lib.viz``.

    denoising   DiffRec's reverse chain kept step by step, top-k of a state, where injected
                noise clicks rank (in a chain or in any model's scores), top-k of one input
                row, top-k lists by the users' early and late interests   (notebooks 03, 05)
    sequential  held-out targets, DiffuRec's reverse path, HR/NDCG@K by reverse step, sample
                diversity, order blindness, SeqDiffRec's inference sweep   (notebooks 06, 07)
    cost        parameters per part, memory of one training step           (notebook 04)
    stats       the binomial band of a hit rate over n users
    robustness  injected random interactions; train on noisy data, test on clean (notebook 08)

Nothing here imports matplotlib; ranking metrics come from ``tutorial_lib.metrics``.
"""
from .cost import parameter_table, training_cost
from .denoising import (Trajectory, click_percentile, denoising_trajectories, denoising_trajectory,
                        interest_shares, mean_noise_rank, noise_rank, recommend, scores_noise_rank, top_k)
from .sequential import (held_out_targets, inference_sweep, order_blindness, rank_by_step, reverse_path,
                         sample_diversity, target_ranks, user_probabilities)
from .robustness import inject_interactions, noise_robustness, relative_change
from .stats import binomial_band

__all__ = ["Trajectory", "binomial_band", "click_percentile", "denoising_trajectories",
           "denoising_trajectory", "held_out_targets", "inference_sweep", "inject_interactions",
           "interest_shares", "mean_noise_rank", "noise_rank", "noise_robustness", "order_blindness",
           "parameter_table", "rank_by_step", "recommend", "relative_change", "reverse_path",
           "sample_diversity", "scores_noise_rank", "target_ranks", "top_k", "training_cost",
           "user_probabilities"]
