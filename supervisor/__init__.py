"""The supervisor: keeps a warm `mlflow models serve` of the version a registry alias points at, and swaps versions
without failing a request. Its contract (what it starts, checks, switches, remembers and stops) is the paragraph
"The supervisor's contract" of docs/serving.md.
"""
