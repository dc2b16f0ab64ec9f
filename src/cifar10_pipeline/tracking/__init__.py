"""MLflow tracking and the model registry, in one place for training, tuning and export.

  settings.py  on or off, the store's URI, experiment and model names, MLflow references (standard library only)
  store.py     the MLflow client on a store, and the data set's experiment
  runs.py      a training run's MLflow run (``Recorder``), a tuning study's parent run and its trials' tags
  models.py    an export logged as MLflow ONNX models, registered with an alias, and a logged run fetched back

Training and export import this package; it imports no trainer and no exporter, only the contract. MLflow itself is
imported when something is first tracked, so a run with tracking off never loads it and leaves no store behind.
"""
