"""Choosing a scale: budgets of FLOPs and parameters, measured latency, the tables, and the
search for the compound coefficients (alpha, beta, gamma) with keras-tuner.

    budget.py        the budget solver: the largest phi within FLOPs, params, latency
    latency.py       measured speed here (Keras, TFLite), the TFLite kit to time on a device
    tables.py        table rows (costs, measured columns, a budget's answer) and their text
    plots.py         costs against phi; a search's trials
    coefficients.py  alpha, beta, gamma: the constraint surface, a scaled baseline
    trial.py         one candidate: brief training, BN recalibrated, validation accuracy
    tuner.py         keras-tuner plumbing and SearchResult
    search.py        search (step 1 of the paper) and tune: the public face of the above
    data.py          the searches' dataset_fn over a pipelines source

``python -m effnet_tf.scale`` is the command over these modules.
"""
