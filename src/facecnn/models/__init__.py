"""Models: the table our models register in (registry.py), every model by name (catalog.py:
`create_model`, `list_models`, `model_info`), the seeds' CNNs, heads, initializers, freeze
policies and the dlib and MTCNN ports.

This file imports nothing, so torch-free modules of this package (the dlib file reader) can be
imported by torch-free code paths (ONNX inference) without importing torch.
"""
