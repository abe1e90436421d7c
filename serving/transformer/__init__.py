"""The KServe transformer: raw Xente transactions → the 26 features from an online feature store → the predictor."""
