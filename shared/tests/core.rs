//! The one integration-test binary of kage-core.
