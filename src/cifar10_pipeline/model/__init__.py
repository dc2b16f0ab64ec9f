"""The network, framework-neutral (``spec``) and per framework (``torch_net``, ``keras_net``), and the registry of
frameworks that trains and exports it (``frameworks``)."""


class ModelFileError(ValueError):
    """A saved model or checkpoint that is refused: it holds more than tensors and plain containers."""
