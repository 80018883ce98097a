"""SAELens's TopK and standard (L1) SAEs on the protocol of ``bench_sae.py``.

SAELens (``pip install sae-lens``, v6) trains an SAE from any iterator of
activation batches with its ``SAETrainer``; here the iterator serves rows of
the benchmark's data, so no language model is loaded. Both models get the
protocol's settings: ``steps`` Adam steps of ``batch_size`` rows (in shuffled
passes over the data), learning rate ``lr`` held constant, on the CPU, with
the squared-error reconstruction loss. Everything else is SAELens's default
(v6.54):

- both: ``W_dec`` rows drawn Kaiming-uniform and rescaled to norm 0.1
  (``decoder_init_norm``), ``W_enc = W_dec.T``, zero biases, the decoder
  bias subtracted from the input (``apply_b_dec_to_input``), no input
  normalization, float32, Adam betas (0.9, 0.999), and the gradient norm
  clipped to 1 (fixed in ``SAETrainer``);
- TopK: ReLU of the k largest pre-activations, scaled by the decoder row
  norms (``rescale_acts_by_decoder_norm``), and the AuxK loss (coefficient
  1) on latents that have not fired for 1000 steps (``dead_feature_window``;
  it never acts in a run of 500 steps);
- standard: ReLU codes and the L1 norm of the codes weighted by the decoder
  row norms, at ``l1_coefficient`` from the first step (no warm-up).

SAELens's loss sums the squared error over features and averages over rows,
so its L1 coefficient is not on the scale of ``SparseAutoencoder``'s
``sparsity_weight``. The default here, 0.3, was chosen on the 20000 x 64
protocol at 2000 steps for an L0 near 5 to 10: SAELens's default
(``l1_coefficient=1.0``) gave L0 1.34 (65% dead latents), 0.3 gave 6.28
and 0.1 gave 13.2.

Codes, reconstructions and the figures are those of ``bench_sae.measure``,
on the training data: FVU, L0 (mean non-zero codes per row), the fraction
of latents never active, MMCS and the matched cosine of the decoder rows
``W_dec`` against the true atoms, and the wall and CPU seconds of building
and training the SAE.
"""

import time
from functools import partial
from unittest import mock

import numpy as np
import torch

from skae.metrics import matched_cosine_similarity, mean_max_cosine_similarity

SKIPPED_NAME = "SAELens TopK / standard"
INSTALL_HINT = (
    "sae_lens not installed (pip install -c constraints.txt sae-lens, "
    "in a venv made with --system-site-packages)"
)


def saelens_rows(
    X, atoms, n_latents, steps, batch_size=512, lr=3e-3, k=5, l1_coefficient=0.3
):
    """Train SAELens's TopK and standard SAEs and measure them like skae's.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Training data, float32.

    atoms : ndarray of shape (n_atoms, n_features)
        The ground-truth atoms.

    n_latents : int
        Number of latents (SAELens's ``d_sae``).

    steps : int
        Optimizer steps; SAELens trains on ``steps * batch_size`` rows.

    batch_size : int, default=512
        Rows per step.

    lr : float, default=3e-3
        Adam's learning rate, held constant.

    k : int, default=5
        Active latents per row of the TopK SAE.

    l1_coefficient : float, default=0.3
        SAELens's ``l1_coefficient`` for the standard SAE (see the module's
        docstring for how it was chosen).

    Returns
    -------
    rows : list of dict
        One dict per model with keys ``name``, ``fvu``, ``l0``, ``dead``,
        ``mmcs``, ``matched``, ``wall`` and ``cpu``; or a single dict with
        ``name`` and ``skipped`` (the reason) when ``sae_lens`` does not
        import.
    """
    try:
        import sae_lens
        from sae_lens.config import SAETrainerConfig
        from sae_lens.training import sae_trainer
    except ImportError:
        return [dict(name=SKIPPED_NAME, skipped=INSTALL_HINT)]
    d_in = X.shape[1]
    configs = {
        f"SAELens TopK k={k}": (
            sae_lens.TopKTrainingSAE,
            sae_lens.TopKTrainingSAEConfig(d_in=d_in, d_sae=n_latents, k=k),
        ),
        f"SAELens standard (L1 {l1_coefficient:g})": (
            sae_lens.StandardTrainingSAE,
            sae_lens.StandardTrainingSAEConfig(
                d_in=d_in, d_sae=n_latents, l1_coefficient=l1_coefficient
            ),
        ),
    }
    trainer_cfg = SAETrainerConfig(
        total_training_samples=steps * batch_size,
        train_batch_size_samples=batch_size,
        lr=lr,
        lr_end=lr,  # its default, None, fails an assertion
        lr_scheduler_name="constant",
        device="cpu",
        logger=sae_lens.LoggingConfig(log_to_wandb=False),
    )
    X_t = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
    rows = []
    for name, (sae_class, sae_cfg) in configs.items():
        torch.manual_seed(0)
        wall, cpu = time.perf_counter(), time.process_time()
        sae = sae_class(sae_cfg)
        trainer = sae_lens.SAETrainer(
            cfg=trainer_cfg, sae=sae, data_provider=_batches(X_t, batch_size)
        )
        # No progress bar: the benchmark prints its own lines.
        with mock.patch.object(
            sae_trainer, "tqdm", partial(sae_trainer.tqdm, disable=True)
        ):
            trainer.fit()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        rows.append(dict(name=name, **_figures(sae, X_t, atoms), wall=wall, cpu=cpu))
    return rows


def _batches(X, batch_size, seed=0):
    """Yield batches of ``batch_size`` rows, in shuffled passes over ``X``."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.empty(0, dtype=torch.long)
    while True:
        while len(order) < batch_size:
            order = torch.cat([order, torch.randperm(len(X), generator=generator)])
        yield X[order[:batch_size]]
        order = order[batch_size:]


@torch.no_grad()
def _figures(sae, X, atoms, chunk=4096):
    """FVU, L0, dead fraction, MMCS and matched cosine of a trained SAE."""
    sae.eval()
    residual, n_active, fired = 0.0, 0, torch.zeros(sae.cfg.d_sae, dtype=torch.bool)
    for start in range(0, len(X), chunk):
        x = X[start : start + chunk]
        codes = sae.encode(x)
        if codes.is_sparse:
            codes = codes.to_dense()
        residual += (x - sae.decode(codes)).pow(2).sum().item()
        active = codes != 0
        n_active += active.sum().item()
        fired |= active.any(dim=0)
    total = (X - X.mean(dim=0)).pow(2).sum().item()
    decoder = sae.W_dec.detach().numpy()
    return dict(
        fvu=residual / total,
        l0=n_active / len(X),
        dead=1.0 - fired.float().mean().item(),
        mmcs=mean_max_cosine_similarity(atoms, decoder),
        matched=matched_cosine_similarity(atoms, decoder),
    )
