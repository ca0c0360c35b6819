"""`python -m facecnn` (also what `torchrun -m facecnn` runs)."""

from facecnn.cli import main

main()
