"""The estimators' inference: transform, inverse_transform and scores.

Each method validates its input and maps it block-wise through the fitted
module (``skae._engine.inference.map_rows``), NumPy in and out.
"""

import numpy as np
import torch
from sklearn.base import TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted

from ._engine.inference import NonFiniteLayer as _NonFiniteLayer
from ._engine.inference import all_finite, map_rows
from ._engine.parallel import blas_within_share
from ._validation import (
    _check_float32_range,
    _float_dtypes,
    _from_tensor,
    _numeric_input,
)


class _InferenceMixin(TransformerMixin):
    """transform, inverse_transform, score_samples and score.

    A TransformerMixin, so that scikit-learn wraps this class's transform
    for ``set_output`` (it wraps the methods a class defines itself).
    """

    @property
    def _n_features_out(self):
        """Number of transformed output features (AttributeError before
        fit, so that get_feature_names_out raises NotFittedError)."""
        return self._fitted_n_components

    @property
    def _fitted_n_components(self):
        """The code size of the fitted net (``n_components`` may have been
        set since, with no refit: the fitted model stays as it was, as
        scikit-learn's fitted estimators do)."""
        return self.net_.module__n_components

    def _map_rows(self, A, prepare, n_out, what, check_output=True, numpy=False):
        """``map_rows`` over the fitted module (see ``_engine.inference``)."""
        return map_rows(
            self.net_.module_,
            torch.device(self.net_.device),
            A,
            prepare,
            n_out,
            what,
            check_input=self._assert_finite,
            owner=type(self).__name__,
            check_output=check_output,
            numpy=numpy,
        )

    def transform(self, X):
        """Encode X: the codes of the trained encoder.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to encode.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_components)
            Codes, of X's floating dtype.
        """
        check_is_fitted(self)
        X = self._validate_X(X, reset=False, finite_in_blocks=True)

        def check_first_layer(pre_activation):
            # Every input value reaches the first layer's output: a NaN or
            # an infinity in X makes its row there non-finite, and a sum
            # over it (the layer's width, not X's) shows it.
            if not all_finite(pre_activation):
                raise _NonFiniteLayer

        # On the CPU the encoder runs in NumPy: its matrix products are then
        # the BLAS's that scikit-learn's PCA.transform uses, which on some
        # CPUs is much faster than torch's for the same product (measured in
        # benchmarks/run.py, section transform). In a Dask worker whose
        # share of threads that BLAS would exceed, torch's capped threads.
        numpy = torch.device(self.net_.device).type == "cpu" and blas_within_share()
        # With one layer, finite first-layer outputs give finite codes (every
        # activation maps finite values to finite values): no check after.
        one_layer = len(self.net_.module_.encoder) == 2
        return self._map_rows(
            X,
            lambda module: module.inference_encoder(check_first_layer, numpy=numpy),
            self._fitted_n_components,
            "codes",
            check_output=not one_layer,
            numpy=numpy,
        )

    def inverse_transform(self, X):
        """Decode codes back to input space.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components)
            Codes, as returned by :meth:`transform`.

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features)
            Reconstructions, of the codes' floating dtype.
        """
        check_is_fitted(self)
        X = _from_tensor(X)
        with _numeric_input(self):
            X = check_array(X, dtype=_float_dtypes(X), estimator=self)
        _check_float32_range(X, self)
        n_components = self._fitted_n_components
        if X.shape[1] != n_components:
            raise ValueError(
                f"X has {X.shape[1]} columns but {type(self).__name__} decodes "
                f"codes of n_components={n_components} columns. Pass the "
                "output of transform."
            )

        def decoder(module):
            if self.loss_ == "binary_cross_entropy":
                return lambda z, out: torch.sigmoid(module.decode(z))
            return lambda z, out: module.reconstruction(module.decode(z))

        reconstructions = self._map_rows(
            X, decoder, self.n_features_in_, "reconstructions"
        )
        shift = getattr(self, "_input_shift", None)
        if shift is not None:
            # Back in X's units from the centred ones (see _base._centred).
            reconstructions += shift.astype(reconstructions.dtype)
        return reconstructions

    def score_samples(self, X):
        """Negative reconstruction error of each sample.

        A sample's error is its reconstruction loss averaged over features.
        Lower means more abnormal.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to score.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Negative reconstruction error of each sample.
        """
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        criterion = self.net_.criterion_
        n_features = X.shape[1]

        # The errors in X's units, in float64 where the device has it: the
        # factor overflows float32 for data near 1e19 and beyond.
        wide = torch.float32 if self.net_.device == "mps" else torch.float64

        def scorer(module):
            encode = module.inference_encoder()
            if criterion.loss == "squared_error":
                # In X's units: the decoder's are X's times target_scale.
                factor = 1.0 / (n_features * float(module.target_scale) ** 2)

                def score(x, out):
                    output = module.decode(encode(x))
                    error = criterion(output, module.target(x)).to(wide)
                    return error.mul_(-factor).unsqueeze(-1)

                return score

            def score(x, out):
                # Cross-entropy against the target clipped to [0, 1], plus
                # the squared distance of the target beyond that range (held
                # out rows may lie outside the training range).
                output = module.decode(encode(x))
                clipped = x.clamp(0.0, 1.0)
                error = criterion(output, clipped) + (x - clipped).square().sum(-1)
                return error.mul_(-1.0 / n_features).unsqueeze(-1)

            return score

        return self._map_rows(X, scorer, 1, "reconstruction errors")[:, 0]

    def score(self, X, y=None):
        """Mean negative reconstruction error (higher is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to score.

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        score : float
            Mean of :meth:`score_samples`.
        """
        return float(np.mean(self.score_samples(X)))
