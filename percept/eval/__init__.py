"""The research toolkit: IQA databases, agreement statistics, layer sweeps and feature-map selection.

- :mod:`percept.eval.datasets`: readers for TID2013/2008, KADID-10k, CSIQ, LIVE, CID:IQ, PIPAL, BAPPS
  (2AFC and JND), NIGHTS and CSV manifests, in their native layouts
  (:func:`~percept.eval.datasets.load_database`); synthetic 2AFC/JND sets judged by a known observer
  (:mod:`percept.eval.datasets.synthetic`);
- :mod:`percept.eval.stats`: SROCC, KROCC, PLCC, RMSE, the VQEG logistic, 2AFC, JND mAP, bootstrap by reference;
- :mod:`percept.eval.agreement`: a metric's 2AFC agreement or JND mAP per subset (``percept agreement``);
- :mod:`percept.eval.sweep`: every tap of several networks against the scores (``percept sweep``);
- :mod:`percept.eval.select`: forward selection of feature maps (``percept select``);
- :mod:`percept.eval.finetune`: learned channel weights (``percept finetune``);
- :mod:`percept.eval.visualize`: what a map responds to (``percept visualize``);
- :mod:`percept.eval.configs`: named sets of configurations for studies (``@seed46``) and their labels;
- :mod:`percept.eval.contract`: :func:`~percept.eval.contract.check_toolkit`, every tool on one backbone,
  checked against the library;
- :mod:`percept.eval.plots`: the figures.

Every tool reads taps through :meth:`percept.backbones.base.Backbone.iter_taps`, so it works on any
registered backbone.

Needs the ``eval`` extra (scipy, pandas, matplotlib, tqdm). ``docs/reproduce.md`` has the commands
that reproduce the published studies.

Example:
    >>> from percept.eval.datasets import load_database
    >>> db = load_database("tid2013", "/data/TID2013")  # doctest: +SKIP
"""
