"""Fermion: a self-hosted device cloud for devices that speak the Particle protocol."""

__version__ = "0.1.0"
