//! kage-core: age keys, sealed values, the SOPS engine and the AgeSecret API types.
