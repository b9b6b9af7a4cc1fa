"""The SME review queue: items opened by routing rules, and the SMEs' decisions."""
