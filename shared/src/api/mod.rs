//! The Kubernetes API types of kage (`kage.dev`).
pub mod v1alpha1;
