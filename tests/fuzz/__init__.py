"""Property-based fuzzing of everything that parses client input (hypothesis)."""
