"""The experiment runners: the answer step, the correct set, and perturbation, steering and statistics runs."""
