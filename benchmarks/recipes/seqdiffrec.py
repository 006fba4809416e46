"""Recipe for Du et al.'s sequential diffusion recommender (SeqDiffRec) on amazon_beauty / synthetic.

    python benchmarks/reproduce.py seqdiffrec --dataset amazon_beauty --device cuda
    python benchmarks/reproduce.py seqdiffrec --dataset synthetic --fast

Everything but the model is shared with DiffuRec's and SASRec's recipe (recipes/sequential.py),
so the three JSON lines sit side by side: the same data loading (``--fast`` keeps 1,500 Beauty
users), the same protocol (leave-one-out; ``hr@K``/``ndcg@K`` x100 with the history NOT
masked, DiffuRec's; ``masked_*`` with it masked), model selection on validation NDCG@10, the
same keys (best_epoch, train_seconds, eval_seconds, seconds_per_epoch, device, seed, n_params).

Settings. Du et al. publish no code, and we could not use a hyper-parameter table: ours follow
DiffuRec's budget where it applies (hidden 128, L = 50, dropout 0.1, Adam lr 1e-3, batch 512,
500 epochs, evaluation every 20 with patience 5) with a 2-block, 2-head denoiser, T = 200
linear betas (Ho et al., rescaled), importance-sampled steps and inference from h_T in
5 reverse steps (notebook 07 shows the trade-off). Small data (synthetic, --fast): a 1-block
width-32 net, T = 100, 8 epochs at lr 5e-3, as the other sequential recipes do.
"""
from __future__ import annotations

from recipes.sequential import _result, _train, load
from tutorial_lib.cli.recipes import FAST_SEQDIFFREC, SEQDIFFREC, SEQDIFFREC_TRAIN  # the settings
from tutorial_lib.cli.recipes import FAST_SEQDIFFREC_TRAIN as FAST_TRAIN
from tutorial_lib.models.seqdiffrec import SeqDiffRec
from tutorial_lib.utils import seed_everything


def run_seqdiffrec(args) -> dict:
    seed_everything(args.seed)
    data = load(args)
    small = args.fast or args.dataset == "synthetic"
    config, train = (FAST_SEQDIFFREC, FAST_TRAIN) if small else (SEQDIFFREC, SEQDIFFREC_TRAIN)
    model = SeqDiffRec(data.n_items, **config, seed=args.seed)
    hist, dev = _train(model, data, args, train, optimizer="adam")
    return _result(args, model, data, hist, dev, {"config": config})


RECIPES = {"seqdiffrec": run_seqdiffrec}
