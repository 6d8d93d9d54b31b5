//! metrics (wip)
