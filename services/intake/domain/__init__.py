"""The desk's rules: the procedure catalog and the dossier's life. No I/O."""
