"""The network itself, in torch alone (no scikit-learn, no skorch).

``activations`` (each activation in every form), ``objectives`` (the loss
and penalty terms), ``penalty`` (a penalty as one object), ``modules`` (the
encoder/decoder module) and ``backprop`` (the written-out training
gradients). Nothing here imports from the rest of skae.
"""
