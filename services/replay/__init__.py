"""Record a system's event streams to a file, and replay a file into a fresh system."""
