"""Load a ``.keras`` file that vidtrack saved, in any process.

Keras finds a custom layer only when the module that registers it has been imported. A new
process that loads a model imported from Darknet (``ChannelGroup``, ``DarknetMaxPool``) must
not depend on what it happened to import before, so :func:`load_keras` imports every module
that defines a layer vidtrack can save first.
"""
from __future__ import annotations

import importlib

# every module with a @keras.saving.register_keras_serializable layer that ends up in a saved model
CUSTOM_LAYER_MODULES = ("detector.decode", "detector.darknet.layers")


def register_custom_layers() -> None:
    """Import the modules that register vidtrack's custom Keras layers."""
    for name in CUSTOM_LAYER_MODULES:
        importlib.import_module(name)


def load_keras(path):
    """The Keras model saved at ``path`` (not compiled); Keras' own errors pass through."""
    import keras

    register_custom_layers()
    return keras.saving.load_model(str(path), compile=False)
