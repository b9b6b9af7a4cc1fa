"""What the assistant said: answers with their cited sources, confidence and latency."""
