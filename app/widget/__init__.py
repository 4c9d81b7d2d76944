"""Public side for customers: the booking API (api.py), the embeddable widget and its loader."""
