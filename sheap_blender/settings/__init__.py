"""The extension's preferences (where the backend, FLAME and the weights are) and their set-up buttons."""
