"""The torch modules: a fully connected encoder and its mirrored decoder."""

import torch
from torch import nn

__all__ = ["AutoencoderModule"]

_ACTIVATIONS = {
    "identity": nn.Identity,
    "logistic": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
}


def _stack(sizes, activation, last_activation):
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2 or last_activation:
            layers.append(_ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class AutoencoderModule(nn.Module):
    """Encoder ``x -> h`` and decoder ``h -> x_hat``, fully connected.

    The encoder applies ``activation`` after every layer, the code layer
    included. The decoder mirrors the encoder's hidden layers, with the same
    activation, and ends in a linear layer (the reconstruction, or its logits
    when the loss is binary cross-entropy).

    Parameters
    ----------
    n_features : int
    n_components : int
    hidden_layer_sizes : tuple of int
        Encoder layers between the input and the code.
    activation : {"identity", "logistic", "tanh", "relu"}
    input_offset : array-like of shape (n_features,), default=None
        Subtracted from the input before encoding (the training data's mean
        centres the encoder's input). Zero when None.
    output_bias : array-like of shape (n_features,), default=None
        Initial bias of the decoder's output layer, e.g. the data mean (or
        its logit for binary cross-entropy), so that training starts from
        the best constant reconstruction. torch's default when None.
    """

    def __init__(
        self,
        n_features,
        n_components,
        hidden_layer_sizes,
        activation,
        input_offset=None,
        output_bias=None,
    ):
        super().__init__()
        sizes = [n_features, *hidden_layer_sizes, n_components]
        self.activation = activation
        self.encoder = _stack(sizes, activation, last_activation=True)
        self.decoder = _stack(sizes[::-1], activation, last_activation=False)
        offset = torch.zeros(n_features)
        if input_offset is not None:
            offset = torch.as_tensor(input_offset, dtype=torch.float32)
        self.register_buffer("input_offset", offset)
        if output_bias is not None:
            with torch.no_grad():
                self.decoder[-1].bias.copy_(torch.as_tensor(output_bias))

    @property
    def code_layer(self):
        """The encoder's last linear layer, the one producing the codes."""
        return self.encoder[-2]

    @property
    def decoder_input_layer(self):
        """The decoder's first linear layer, the one reading the codes."""
        return self.decoder[0]

    def encode(self, x):
        return self.encoder(x - self.input_offset)

    def decode(self, codes):
        return self.decoder(codes)

    def forward(self, x):
        codes = self.encode(x)
        return codes, self.decoder(codes)
