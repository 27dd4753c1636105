"""The course's experiments as importable modules, in the Flax examples' shape: each has a
config dataclass (``Config``), ``train_and_evaluate(config, workdir)`` and a thin
``main(argv)``; the ``jaxphys`` command runs them (``jaxphys quickstart|mnist|susy``).

- :mod:`~jaxphys.experiments.quickstart`: logistic regression to a CNN on 8x8 digits;
- :mod:`~jaxphys.experiments.mnist`: the MNIST ladder, up to a ResNet with augmentation;
- :mod:`~jaxphys.experiments.susy`: the SUSY search.

:mod:`~jaxphys.experiments.base` holds the settings they share and the checks of every
value; :mod:`~jaxphys.experiments.runner` a run's folder, log and callbacks;
:mod:`~jaxphys.experiments.cli` the command line's contract (exit code 2 on bad input).
"""

EXPERIMENTS = ("quickstart", "mnist", "susy")
