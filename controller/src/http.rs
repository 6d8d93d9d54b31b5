//! http (wip)
