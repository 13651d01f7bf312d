"""convtune: fine-tune pretrained Transformers with convolutional classification heads."""

__version__ = "0.1.0"

__all__ = ["Classifier", "ConvtuneError", "TextCNNClassifier", "TfidfClassifier", "__version__", "load"]


def __getattr__(name: str):
    # Lazy: importing torch / transformers takes seconds, and `convtune datasets` needs neither.
    if name == "Classifier":
        from .classifier import Classifier

        return Classifier
    if name == "TfidfClassifier":
        from .baselines import TfidfClassifier

        return TfidfClassifier
    if name == "TextCNNClassifier":
        from .textcnn import TextCNNClassifier

        return TextCNNClassifier
    if name == "load":
        from .estimator import load

        return load
    if name == "ConvtuneError":
        from .errors import ConvtuneError

        return ConvtuneError
    raise AttributeError(name)
