//! `kage.dev/v1alpha1`: the AgeSecret custom resource (filled by the controller work).
