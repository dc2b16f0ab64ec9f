"""Where the exported model runs besides onnxruntime on the CPU: one runner (or check) per target."""
