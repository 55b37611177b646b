"""Training helpers that plug into the stock `Trainer`."""
