"""Compatibility with the released OpenAI Jukebox checkpoints."""
