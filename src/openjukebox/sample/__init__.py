"""Sampling codes from priors: ancestral, windowed past the context, primed."""
