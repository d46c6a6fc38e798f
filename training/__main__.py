"""`python -m training` runs the piano recipe."""

from training.piano import main

main()
