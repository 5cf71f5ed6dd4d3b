"""Pretrained networks brought in offline: checkpoint readers and their ports to PyTorch."""
