"""convtune: fine-tune pretrained Transformers with convolutional classification heads."""

__version__ = "0.1.0"

__all__ = ["Classifier", "ConvtuneError", "__version__"]


def __getattr__(name: str):
    # Lazy: importing torch / transformers takes seconds, and `convtune datasets` needs neither.
    if name == "Classifier":
        from .classifier import Classifier

        return Classifier
    if name == "ConvtuneError":
        from .errors import ConvtuneError

        return ConvtuneError
    raise AttributeError(name)
