"""Training SAEs for the embedded models (SAELens) and measuring their quality."""
