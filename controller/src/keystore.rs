//! keystore (wip)
