"""One module per catalogue source; ``imagery.catalog.get_catalog`` picks one by name."""
