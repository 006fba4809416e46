"""What a model costs: parameters per part, the memory one training step holds, and the
multiply-adds of scoring a user (notebook 04)."""
from __future__ import annotations

import pandas as pd
import torch
from torch import nn


def parameter_table(models: dict) -> pd.DataFrame:
    """Parameters of each model's parts: {name: model} -> rows (model, part, parameters)."""
    rows = []
    for name, model in models.items():
        for part, module in model.named_children():
            n = sum(p.numel() for p in module.parameters())
            if n:
                rows.append({"model": name, "part": part, "parameters": n})
    return pd.DataFrame(rows)


def training_cost(model, x: torch.Tensor) -> dict:
    """What one training step of ``model`` on batch x (B, I) holds in memory, in MB.

    ``weights_mb``: parameters + their gradients (4 + 4 bytes each, float32);
    ``activations_mb``: the tensors autograd saves for the backward pass (counted once per
    storage with ``torch.autograd.graph.saved_tensors_hooks``; the weights it saves too are
    already in ``weights_mb``). Adam's two moments would add another 8 bytes per parameter.
    The model's gradients are cleared and its train/eval modes restored afterwards.
    """
    seen: dict[int, int] = {}
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def pack(t):
        if isinstance(t, torch.Tensor) and t.device.type != "meta":
            storage = t.untyped_storage()
            if storage.data_ptr() not in weights:
                seen[storage.data_ptr()] = storage.nbytes()
        return t

    modes = [(m, m.training) for m in model.modules()]
    model.train()
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = model.loss(x)
        loss.backward()
    finally:
        model.zero_grad(set_to_none=True)
        for m, training in modes:
            m.training = training
    params = sum(p.numel() for p in model.parameters())
    return {"parameters": params, "weights_mb": 8 * params / 2 ** 20,
            "activations_mb": sum(seen.values()) / 2 ** 20}


def inference_macs(model, x: torch.Tensor) -> float:
    """Multiply-adds per user of ``model.predict(x)`` for rows x (B, I), in eval mode.

    Counts every call of every ``nn.Linear`` (in_features x out_features per row), so a
    reverse chain of T steps counts its denoiser T times: what the code runs, not what a
    shortcut could skip. Biases, activations and the diffusion arithmetic are left out.
    """
    from ..utils import eval_mode

    total = 0

    def count(module, inputs, output):
        nonlocal total
        total += inputs[0].numel() // module.in_features * module.in_features * module.out_features

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Linear)]
    try:
        with torch.no_grad(), eval_mode(model):
            model.predict(x)
    finally:
        for hook in hooks:
            hook.remove()
    return total / x.shape[0]
