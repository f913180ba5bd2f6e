"""Models run in-process: the sentence embedder, its ONNX encoder, and the files they load."""
