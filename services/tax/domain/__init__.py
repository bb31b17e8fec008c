"""The tax rules: statutory rates on land-use-right transfers. No I/O."""
