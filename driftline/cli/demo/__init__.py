"""The demo: a food-delivery ETA model's traffic, stable then drifting, through a real worker."""
