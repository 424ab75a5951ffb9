"""Jinja2 templates of the Asterisk config files (package data, so an installed wheel has them)."""
