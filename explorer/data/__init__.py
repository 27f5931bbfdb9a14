"""Deterministic task generators and loaders for the shipped data."""
