"""SG-Net model: meta-architecture, heads, losses, post-processing."""
