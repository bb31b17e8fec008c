"""The registry's rules: appraisal against the land price table, certificates. No I/O."""
