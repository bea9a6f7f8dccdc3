"""The memory plan of a run: what each training step needs on one device, and whether it fits."""
