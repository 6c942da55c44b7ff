"""Transformer priors over VQ-VAE codes (paper section 4, appendix A)."""
