"""Wire formats: the Open Inference Protocol (``v2``) and the original JSON API (``legacy``)."""
