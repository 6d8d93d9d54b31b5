//! reconcile (wip)
