//! Round trips with the real sops and age binaries (never skipped).
