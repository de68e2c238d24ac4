"""Audio-language model backends, prompts, output parsing and the tiny offline checkpoint."""
