"""Pages people look at: the per-model HTML report."""
