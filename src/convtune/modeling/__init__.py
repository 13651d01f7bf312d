"""The network: heads, the encoder + head model, encoders and their packages, the checkpoint format."""
