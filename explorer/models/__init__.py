"""Small, readable models with named hook points, capture of activations, and pretrained loaders."""
