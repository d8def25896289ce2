"""``unitprune mcu-bench``: every method's int8 model measured on the simulated MCUs.

* :mod:`.bench`: the harness (methods -> int8 models -> exports -> simulator runs -> records);
* :mod:`.bench_report`: ``mcu.md`` and the Figure 6/7 plots from its records.
"""
