//! telemetry (wip)
