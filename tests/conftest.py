import warnings

import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request):
    """Each device present on this machine."""
    return request.param


@pytest.fixture
def quiet_convergence():
    """ConvergenceWarning silenced: for tests whose short fits stop at
    max_iter by design (use with ``pytest.mark.usefixtures``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield
