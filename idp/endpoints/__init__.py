"""One module per endpoint; each is an ordered pipeline of small named checks."""
