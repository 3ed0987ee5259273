"""Chat models and the model gateway."""
