"""The studies behind the notebooks, one module per notebook: each builds its runs through the run cache
and returns a tidy DataFrame that the notebook saves to ``results/`` and plots.

=====================  ==========================================================
module                 notebook
=====================  ==========================================================
:mod:`.alignment`      01 activation alignment (BatchNorm input statistics)
:mod:`.shared_bn`      02 shared BatchNorm and intermediate bit-widths
:mod:`.angles`         03 gradient angles between bit-widths
:mod:`.pruning`        04 convergence per bit-width, the 80% pruning table, EMQ's sampler chosen on validation
:mod:`.cost`           05 training cost against Dedicated
:mod:`.acs`            06 ACS against its baselines
:mod:`.label_noise`    07 ACS under label noise
:mod:`.extraction`     08 bit-wise and batch score extraction
:mod:`.costs`          09 what each result cost
=====================  ==========================================================

:mod:`.common` holds what several share: training runs (by ``$EMQ_WORKERS`` worker processes), one row
per run, and the configurations of EMQ's bit-wise coreset and of the ACS setting.
"""
