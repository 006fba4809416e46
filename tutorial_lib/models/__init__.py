"""One model per file. Every model follows the protocol in docs/architecture.md:

trainable models (``nn.Module``): ``batches(data, batch_size, generator)``, ``loss(batch)``,
``score(data, users, split)``; closed-form baselines: ``fit(data)`` and ``score``.

    popularity   most-popular items (the first number to beat)
    ease         EASE (Steck 2019), closed form
    multivae     Mult-VAE (Liang et al. 2018)
    cfgan        CFGAN (Chae et al. 2018)
    diffrec      DiffRec (Wang et al. 2023): MLP denoiser over interaction vectors
    diffrec_fast the DiffRec family with exact speed shortcuts (what the recipes train)
    tdiffrec     T-DiffRec's time-aware reweighting
    lightgcn     LightGCN (He et al. 2020), item embeddings for L-DiffRec's clusters
    ldiffrec     L-DiffRec: per-cluster VAEs + latent diffusion
    sasrec       SASRec (Kang & McAuley 2018)
    diffurec     DiffuRec (Li et al. 2023)
    seqdiffrec   Du et al. (2023)'s sequential diffusion recommender
    layers       shared pieces: the sinusoidal step embedding, the Transformer encoder
    toy          the 1-D mixture and its tiny denoiser (notebooks 01-02)
"""
