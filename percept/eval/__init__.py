"""The research toolkit: IQA databases, agreement statistics, layer sweeps and feature-map selection.

- :mod:`percept.eval.datasets`: readers for TID2013/2008, KADID-10k, CSIQ, LIVE, CID:IQ, PIPAL, BAPPS
  and CSV manifests, in their native layouts (:func:`~percept.eval.datasets.load_database`);
- :mod:`percept.eval.stats`: SROCC, KROCC, PLCC, RMSE, the VQEG logistic, 2AFC, bootstrap by reference;
- :mod:`percept.eval.sweep`: every tap of several networks against the scores (``percept sweep``);
- :mod:`percept.eval.select`: forward selection of feature maps (``percept select``);
- :mod:`percept.eval.plots`: the figures.

Needs the ``eval`` extra (scipy, pandas, matplotlib, tqdm). ``docs/reproduce.md`` has the commands
that reproduce the published studies.

Example:
    >>> from percept.eval.datasets import load_database
    >>> db = load_database("tid2013", "/data/TID2013")  # doctest: +SKIP
"""
