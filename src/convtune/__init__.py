"""convtune: fine-tune pretrained Transformers with convolutional classification heads."""

from convtune._version import __version__

__all__ = ["Classifier", "ConvtuneError", "Ensemble", "TextCNNClassifier", "TfidfClassifier", "__version__", "load"]


def __getattr__(name: str):
    # Lazy: importing torch / transformers takes seconds, and `convtune datasets` needs neither.
    if name == "Classifier":
        from convtune.estimators.transformer import Classifier

        return Classifier
    if name == "TfidfClassifier":
        from convtune.estimators.tfidf import TfidfClassifier

        return TfidfClassifier
    if name == "TextCNNClassifier":
        from convtune.estimators.textcnn import TextCNNClassifier

        return TextCNNClassifier
    if name == "load":
        from convtune.estimators.registry import load

        return load
    if name == "Ensemble":  # through the registry, which gives it the loader of its members
        from convtune.estimators.registry import Ensemble

        return Ensemble
    if name == "ConvtuneError":
        from convtune.errors import ConvtuneError

        return ConvtuneError
    raise AttributeError(name)
