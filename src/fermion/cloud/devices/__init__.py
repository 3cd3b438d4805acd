"""The device server: Particle devices connect here over TCP (reference §1)."""
