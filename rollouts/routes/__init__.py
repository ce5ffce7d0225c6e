"""Route editors: one module per traffic API behind one small interface (read weights, write
weights), as Flagger does in ``pkg/router``."""
