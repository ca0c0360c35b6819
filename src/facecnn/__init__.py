"""facecnn: face recognition with convolutional networks.

`facecnn.train(...)` trains a run (facecnn/train); `facecnn.faces` finds, embeds and names
faces. Both import their heavy libraries only when used.
"""

from facecnn import train  # noqa: F401 (light: the training API loads torch when called)

__version__ = "0.1.0"
