"""Rendering notices as the official forms lay them out. No I/O."""
