"""The scikit-learn surface: the transformer classifier, TF-IDF, TextCNN, ONNX, and their registry."""
