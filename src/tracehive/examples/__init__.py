"""Example programs shipped with tracehive; ``tracehive demo`` runs :mod:`tracehive.examples.seed`."""
