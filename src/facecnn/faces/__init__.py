"""Face recognition by embeddings: detect, align, embed, verify and identify faces."""
