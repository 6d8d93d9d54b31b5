//! Bad input: each failure has its own typed error, never a panic.
