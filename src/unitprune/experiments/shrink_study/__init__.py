"""The experiment around :func:`unitprune.shrink.shrink` (``unitprune shrink``).

* :mod:`.shrink_experiment`: train a base, shrink it to a budget, run the baselines, write the run;
* :mod:`.structured_baselines`: Torch-Pruning, DPF and train-time pruning to the same budget;
* :mod:`.shrink_measure`: the shrunk models as firmware on the simulated MCUs;
* :mod:`.shrink_report`: ``report.md`` and its plots.
"""
