"""The transaction schema and the 26-feature definition shared by training (``ml``) and serving.

Imports numpy and the standard library only (:mod:`credit_features.table`, the CSV validator, also
pandas): the predictor's and the transformer's image import it without any training library.
"""
