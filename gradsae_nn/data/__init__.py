"""Data: SQuAD v1.1, prompt templates, and the official EM/F1 metrics."""
