"""The urban management office's rules, without I/O."""
