"""skae: autoencoders as scikit-learn transformers, trained with PyTorch."""

from ._autoencoder import Autoencoder
from ._contractive import ContractiveAutoencoder
from ._denoising import DenoisingAutoencoder
from ._impute import AutoencoderImputer
from ._outlier import AutoencoderOutlierDetector
from ._sparse import SparseAutoencoder

__version__ = "0.1.0"

__all__ = [
    "Autoencoder",
    "AutoencoderImputer",
    "AutoencoderOutlierDetector",
    "ContractiveAutoencoder",
    "DenoisingAutoencoder",
    "SparseAutoencoder",
    "__version__",
]
