"""facecnn: face recognition with convolutional networks.

`facecnn.train(...)` trains a run (facecnn/train); `facecnn.faces` finds, embeds and names
faces. Both import their heavy libraries only when used.
"""

import os

# Threads waiting for work sleep rather than spin: a spinning OpenMP thread holds its core,
# so when another process has a core every parallel region waits for a thread that is not
# running, and PyTorch, dlib and FAISS run several times slower (benchmarks/cli_vs_server.py).
# Set before any of them loads; a value the user gave wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from facecnn import train  # noqa: E402, F401 (light: the training API loads torch when called)

__version__ = "0.1.0"
