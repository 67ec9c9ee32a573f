"""The movie recommender model: catalog, movie text, encoder, index, title resolution and the pyfunc.

Nothing here imports HTTP code or the pipelines; importing the package has no side effects.
"""
