//! Integration tests of kage-controller.
