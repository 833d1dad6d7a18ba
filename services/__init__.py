"""The three services. Each folder holds only its entry point and what is its own."""
