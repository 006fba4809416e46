"""analysis.cost.inference_macs: multiply-adds of scoring a user, counted per layer call."""
from __future__ import annotations

import numpy as np
import torch

from tutorial_lib.analysis.cost import inference_macs
from tutorial_lib.models.diffrec import DiffRec
from tutorial_lib.models.ldiffrec import LDiffRec


def test_diffrec_counts_its_mlp_once_per_reverse_step():
    model = DiffRec(50, dims=[8], T=5).train()
    macs = inference_macs(model, torch.zeros(3, 50))
    per_step = 10 * 10 + (50 + 10) * 8 + 8 * 50            # step embedding, in layer, out layer
    assert macs == 5 * per_step
    assert all(m.training for m in model.modules())       # the mode it was in comes back


def test_ldiffrec_encodes_and_decodes_once_and_runs_the_chain_in_latent_space():
    clusters = np.arange(40) % 2
    model = LDiffRec(40, clusters=clusters, encoder_dims=[8], mlp_dims=[6], T=3)
    macs = inference_macs(model, torch.zeros(2, 40))
    encoders = 2 * 20 * (2 * 4)                            # each cluster: 20 items -> mu, logvar of 4
    decoder = 8 * 40
    chain = 3 * (10 * 10 + (8 + 10) * 6 + 6 * 8)
    assert macs == encoders + decoder + chain
    wider = LDiffRec(400, clusters=np.arange(400) % 2, encoder_dims=[8], mlp_dims=[6], T=3)
    assert inference_macs(wider, torch.zeros(1, 400)) == 10 * (encoders + decoder) + chain   # chain: no I in it
