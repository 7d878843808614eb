"""`trainguard demo`: the guard end to end on a small digit classifier, offline."""
