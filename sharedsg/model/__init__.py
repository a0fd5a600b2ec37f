"""The Neural Memory Network of the paper (Eq. 1-8) and its synthetic-gradient modules (Eq. 9-11)."""
