"""Datasets: folders of audio with optional labels, and synthetic music for tests and demos."""
