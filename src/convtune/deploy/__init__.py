"""After training: ONNX export, the HTTP server, predictions for files."""
