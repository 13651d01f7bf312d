"""The training loop, its callbacks, and the frozen-mode token-state cache."""
