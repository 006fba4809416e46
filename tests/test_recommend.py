"""recommend(): every model of the course, raw ids in and out, seen items left out."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tutorial_lib.data import from_dataframe
from tutorial_lib.models.cfgan import CFGAN
from tutorial_lib.models.diffrec import DiffRec, default_dims
from tutorial_lib.models.diffurec import DiffuRec
from tutorial_lib.models.ease import EASE
from tutorial_lib.models.ldiffrec import LDiffRec
from tutorial_lib.models.lightgcn import LightGCN
from tutorial_lib.models.multivae import MultiVAE
from tutorial_lib.models.popularity import Popularity
from tutorial_lib.models.sasrec import SASRec
from tutorial_lib.models.seqdiffrec import SeqDiffRec
from tutorial_lib.models.tdiffrec import TDiffRec
from tutorial_lib.recommend import recommend


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    rows = [(f"user{u}", f"item{i}", t) for u in range(30) for t, i in enumerate(rng.choice(20, 8, replace=False))]
    # one validation item a user (round(0.1 * 8)): the sequential models' test input appends it
    return from_dataframe(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]), valid_frac=0.1,
                          test_frac=0.2)


MODELS = {
    "popularity": lambda d: Popularity().fit(d),
    "ease": lambda d: EASE(lam=10.0).fit(d),
    "diffrec": lambda d: DiffRec(d.n_items, dims=[16], T=4),
    "tdiffrec": lambda d: TDiffRec(d.n_items, dims=[16], T=4),
    "ldiffrec": lambda d: LDiffRec(d.n_items, clusters=np.arange(d.n_items) % 2),
    "multivae": lambda d: MultiVAE(d.n_items, hidden=[16], latent=8),
    "lightgcn": lambda d: LightGCN(d, dim=8),
    "cfgan": lambda d: CFGAN(d.n_items, g_hidden=(16,), d_hidden=(8,)),
    "sasrec": lambda d: SASRec(d.n_items, hidden=16, max_len=10, n_blocks=1, heads=1),
    "diffurec": lambda d: DiffuRec(d.n_items, hidden=16, max_len=10, n_blocks=1, heads=2, T=4),
    "seqdiffrec": lambda d: SeqDiffRec(d.n_items, hidden=16, max_len=10, n_layers=1, T=10),
}


@pytest.mark.parametrize("name", MODELS)
def test_recommend_excludes_seen_items_and_speaks_raw_ids(name, data):
    torch.manual_seed(0)
    model = MODELS[name](data)
    users = ["user3", "user7"]
    recs = model.recommend(data, users, k=5)
    assert list(recs.columns) == ["user", "rank", "item", "score"]
    assert recs.groupby("user").size().to_dict() == {"user3": 5, "user7": 5}
    assert recs["item"].str.startswith("item").all()                           # raw item ids out
    for user, rows in recs.groupby("user"):
        u = data.user_map[user]
        seen = set((data.train + data.valid + data.test)[u].indices)
        assert not seen & {data.item_map[i] for i in rows["item"]}, f"{name} recommends a seen item"
        assert rows["score"].is_monotonic_decreasing and list(rows["rank"]) == [1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match="unknown user 'nobody'"):
        model.recommend(data, ["nobody"], k=5)


def test_recommend_matches_the_scores_and_chunks_users(data):
    model = EASE(lam=10.0).fit(data)
    users = [f"user{u}" for u in range(30)]
    one = recommend(model, data, users, k=3, exclude="train")
    chunked = recommend(model, data, users, k=3, exclude="train", batch_size=7)
    pd.testing.assert_frame_equal(one, chunked)
    u = data.user_map["user0"]
    scores = model.score(data, torch.tensor([u]), split="test")[0].clone()
    scores[torch.as_tensor(data.train[u].indices)] = -torch.inf
    inverse = {v: k for k, v in data.item_map.items()}
    best = [inverse[int(i)] for i in scores.topk(3).indices]
    assert one[one.user == "user0"]["item"].tolist() == best


def test_recommend_rejects_bad_arguments(data):
    model = Popularity().fit(data)
    with pytest.raises(ValueError, match="k must be"):
        model.recommend(data, ["user1"], k=0)
    with pytest.raises(ValueError, match="exclude must be"):
        model.recommend(data, ["user1"], exclude="everything")


def test_default_dims_scale_with_the_catalogue():
    assert default_dims(2810) == [200, 600]
    assert default_dims(400) == [64]
    assert DiffRec(400).denoiser.in_dims == [400, 64]
