"""cnnviz: see, edit and train convolutional neural networks.

Only the version lives here, so that ``import cnnviz`` stays instant.
"""

__version__ = "0.1.0"
