"""Training and inference on top of ``skae._nn``: skorch and torch.

``train`` (the one call an estimator makes to train its net), ``net`` (the
skorch net, its loss, stopping rule, progress bar and device
resolution), ``stacked`` (many nets of one architecture as one stacked
model), ``batched`` (training them together, for ``BatchedGridSearchCV``),
``inference`` (block-wise inference) and ``parallel`` (thread limits inside
Dask workers). It imports from ``skae._nn`` only; the estimators import from
it.
"""
