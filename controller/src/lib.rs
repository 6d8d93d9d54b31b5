//! kage-controller library.
