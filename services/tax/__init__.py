"""The tax authority: assesses financial obligations and issues payment notices."""
