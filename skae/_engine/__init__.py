"""Training and inference on top of ``skae._nn``: skorch and torch.

The interface the estimator layer calls, and nothing else of this package:

* ``net.AutoencoderNet`` and ``net.ReconstructionLoss``: the skorch net an
  estimator builds (``skae/_build.py``), ``data.resolve_device``;
* ``train.train(net, X, X_valid, epochs, callbacks, own)``: train one net,
  with ``callbacks.PlateauStopping`` and ``callbacks.ProgressBar``;
* ``batched.fit_nets(nets, X, train_rows, valid_rows, ...)``: train many
  nets of one architecture at once, as one stacked model
  (``BatchedGridSearchCV``), with the penalties' stacked forms
  (``stacked.StackedPenalty``, ``stacked.member_bytes`` for its memory);
* ``inference.map_rows(module, device, A, prepare, ...)``: block-wise
  inference, NumPy in and out;
* ``parallel``: thread limits inside Dask workers.

The rest (``data``, ``members``, ``stacked``) is internal to the engine. It
imports from ``skae._nn`` only; the estimators import from it.
"""
