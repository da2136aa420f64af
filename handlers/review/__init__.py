"""The exposure review function: who read the bucket while it was open."""
