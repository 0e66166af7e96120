"""One module per catalogue source (``imagery.catalog.get_catalog`` picks one by name), with what they share
below them: ``base`` (protocol, period, coverage, checks) and ``access`` (signing, credentials)."""
