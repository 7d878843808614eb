"""The runtime guard: observes a training process through PyTorch's hooks and reports findings."""
