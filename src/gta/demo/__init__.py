"""What only the embedded demo uses, where the truth is known because expression is simulated."""
