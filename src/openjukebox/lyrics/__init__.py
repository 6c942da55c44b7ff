"""Lyrics as the released Jukebox lyrics models read them."""
