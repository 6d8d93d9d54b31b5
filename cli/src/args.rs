//! The command line, as clap derive definitions only (man pages and completions can reuse them).
//! Each subcommand's arguments are resolved into a validated configuration in `cmd/<sub>.rs`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Keep Kubernetes Secrets in Git, encrypted with age.
#[derive(Debug, Parser)]
#[command(
    name = "kage",
    version,
    propagate_version = true,
    disable_help_subcommand = true,
    after_help = "Exit codes: 0 ok, 1 error, 2 usage, 3 no matching key, 4 integrity check failed,\n\
                  5 binding mismatch, 6 already encrypted, 7 cluster or controller unavailable,\n\
                  130 interrupted. Docs: docs/cli.md"
)]
pub struct Cli {
    /// Use this .kage.yaml instead of searching upward from the working directory [env: KAGE_CONFIG]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands (parsed once per process: the size difference between variants is harmless).
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Generate an age identity (same file format as age-keygen)
    Keygen(KeygenArgs),
    /// Encrypt Secret manifests into AgeSecrets (or SOPS files with --sops)
    Seal(SealArgs),
    /// Set one value of a sealed file in place
    Set(SetArgs),
    /// Remove one value of a sealed file in place
    Unset(UnsetArgs),
    /// Decrypt AgeSecrets to Secret manifests and SOPS files to plaintext (recovery)
    Unseal(UnsealArgs),
    /// Decrypt a file into $EDITOR and encrypt it again
    Edit(EditArgs),
    /// Re-encrypt files to their environment's current recipients
    Reencrypt(ReencryptArgs),
    /// Check sealed files offline
    Validate(ValidateArgs),
    /// Environments of .kage.yaml
    #[command(subcommand)]
    Env(EnvCommand),
    /// Keys of the environments
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Write .sops.yaml creation rules matching .kage.yaml
    SopsConfig(SopsConfigArgs),
}

/// Where the recipients come from.
#[derive(Debug, Clone, Default, Args)]
pub struct RecipientArgs {
    /// Encrypt to this age recipient (repeatable; replaces the environment's recipients)
    #[arg(short = 'r', long = "recipient", value_name = "AGE1…")]
    pub recipients: Vec<String>,
    /// Encrypt to the recipients listed in FILE (repeatable)
    #[arg(short = 'R', long = "recipients-file", value_name = "FILE")]
    pub recipients_files: Vec<PathBuf>,
    /// Use this environment of .kage.yaml instead of the one matching the file's path
    #[arg(long, value_name = "NAME")]
    pub env: Option<String>,
}

/// Where the identities come from.
#[derive(Debug, Clone, Default, Args)]
pub struct IdentityArgs {
    /// Identity file (repeatable); also KAGE_IDENTITY, SOPS_AGE_KEY_FILE, SOPS_AGE_KEY
    #[arg(short = 'i', long = "identity", value_name = "FILE")]
    pub identities: Vec<PathBuf>,
}

/// Where the output goes.
#[derive(Debug, Clone, Default, Args)]
pub struct OutputArgs {
    /// Write to FILE, or with several inputs to the directory DIR (same file names)
    #[arg(short = 'o', long, value_name = "FILE|DIR")]
    pub output: Option<PathBuf>,
    /// Replace each input file with the result
    #[arg(long, conflicts_with = "output")]
    pub in_place: bool,
}

/// Binding scope of sealed values: strict (this name in this namespace), namespace (any name in
/// this namespace), cluster (anywhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScopeArg {
    Strict,
    Namespace,
    Cluster,
}

/// `kage keygen`
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Write the identity to FILE (mode 0600) instead of stdout
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `kage seal`
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    kage seal clusters/prod/db.yaml -o clusters/prod/db.sealed.yaml\n  \
    kage seal --env prod --name db -n prod --from-literal password=s3cret\n  \
    kubectl create secret generic db --from-literal=password=s3cret --dry-run=client -o yaml |\n      kage seal --env prod\n  \
    kage seal --sops values.yaml --encrypted-suffix _secret -r age1…\n  \
    kage seal --merge-into db.sealed.yaml --from-literal token=abc")]
pub struct SealArgs {
    /// Secret manifests (YAML or JSON; `-` or none for stdin)
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub recipients: RecipientArgs,
    /// Binding: strict (name and namespace), namespace, cluster [default: the environment's, else strict]
    #[arg(long, value_enum)]
    pub scope: Option<ScopeArg>,
    /// Namespace of the Secret (overrides the manifest; a different value there is an error)
    #[arg(short = 'n', long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Name of the Secret (overrides the manifest; a different value there is an error)
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Secret type when building one from --from-literal/--from-file [default: Opaque]
    #[arg(long = "type", value_name = "TYPE")]
    pub secret_type: Option<String>,
    /// Add a value KEY=VALUE (repeatable; builds the Secret without a manifest)
    #[arg(long, value_name = "KEY=VALUE")]
    pub from_literal: Vec<String>,
    /// Add a value from a file, as [KEY=]PATH (repeatable; the key defaults to the file name)
    #[arg(long, value_name = "[KEY=]PATH")]
    pub from_file: Vec<String>,
    /// Add or replace values in this sealed AgeSecret (needs only public keys)
    #[arg(long, value_name = "EXISTING", conflicts_with = "sops")]
    pub merge_into: Option<PathBuf>,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub sops: SopsArgs,
    /// Seal to the cluster's published keys (ConfigMap kage-public-keys) instead of .kage.yaml's
    #[arg(long, conflicts_with_all = ["recipients", "recipients_files"])]
    pub cluster: bool,
    #[command(flatten)]
    pub cluster_args: ClusterArgs,
}

/// SOPS output options of `kage seal`.
#[derive(Debug, Clone, Default, Args)]
pub struct SopsArgs {
    /// Write SOPS files (a Secret stays a Secret, for Flux; other documents use the rules below)
    #[arg(long)]
    pub sops: bool,
    /// With --sops: turn a Secret into an AgeSecret in SOPS form (bound, MAC over encrypted values)
    #[arg(long, requires = "sops")]
    pub as_agesecret: bool,
    /// Encrypt only values whose key matches REGEX
    #[arg(long, value_name = "REGEX", requires = "sops", group = "selection")]
    pub encrypted_regex: Option<String>,
    /// Encrypt only values whose key ends with SUFFIX
    #[arg(long, value_name = "SUFFIX", requires = "sops", group = "selection")]
    pub encrypted_suffix: Option<String>,
    /// Leave values whose key ends with SUFFIX in clear [sops default: _unencrypted]
    #[arg(long, value_name = "SUFFIX", requires = "sops", group = "selection")]
    pub unencrypted_suffix: Option<String>,
    /// Leave values whose key matches REGEX in clear
    #[arg(long, value_name = "REGEX", requires = "sops", group = "selection")]
    pub unencrypted_regex: Option<String>,
    /// Compute the MAC over encrypted values only
    #[arg(long, requires = "sops")]
    pub mac_only_encrypted: bool,
}

/// `kage set`
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    kage set db.sealed.yaml password s3cret\n  \
    printf %s \"$TOKEN\" | kage set db.sealed.yaml token -\n  \
    kage set values.enc.yaml db.password --from-file pw.txt -i key.txt")]
pub struct SetArgs {
    /// Sealed AgeSecret or SOPS file, changed in place
    pub file: PathBuf,
    /// Key to set (SOPS files: a dotted path such as db.password)
    pub key: String,
    /// The value (`-` reads stdin); not needed with --from-file
    #[arg(required_unless_present = "from_file", conflicts_with = "from_file")]
    pub value: Option<String>,
    /// Read the value from F
    #[arg(long, value_name = "F")]
    pub from_file: Option<PathBuf>,
    #[command(flatten)]
    pub recipients: RecipientArgs,
    #[command(flatten)]
    pub identities: IdentityArgs,
}

/// `kage unset`
#[derive(Debug, Args)]
pub struct UnsetArgs {
    /// Sealed AgeSecret or SOPS file, changed in place
    pub file: PathBuf,
    /// Key to remove (SOPS files: a dotted path)
    pub key: String,
    #[command(flatten)]
    pub identities: IdentityArgs,
}

/// `kage unseal`
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    kage unseal db.sealed.yaml -i key.txt\n  \
    SOPS_AGE_KEY_FILE=key.txt kage unseal values.enc.yaml -o values.yaml")]
pub struct UnsealArgs {
    /// AgeSecrets or SOPS files (`-` or none for stdin)
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub identities: IdentityArgs,
    /// Write to FILE (mode 0600), or with several inputs into the directory DIR
    #[arg(short = 'o', long, value_name = "FILE|DIR")]
    pub output: Option<PathBuf>,
    /// Emit `stringData` for values that are UTF-8 text instead of base64 `data`
    #[arg(long)]
    pub string_data: bool,
}

/// `kage edit`
#[derive(Debug, Args)]
pub struct EditArgs {
    /// Sealed AgeSecret or SOPS file
    pub file: PathBuf,
    #[command(flatten)]
    pub identities: IdentityArgs,
    #[command(flatten)]
    pub recipients: RecipientArgs,
}

/// `kage reencrypt`
#[derive(Debug, Args)]
pub struct ReencryptArgs {
    /// Sealed AgeSecrets or SOPS files, re-encrypted in place
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub identities: IdentityArgs,
    #[command(flatten)]
    pub recipients: RecipientArgs,
    /// SOPS files: draw a new data key and encrypt every value again
    #[arg(long)]
    pub rotate_data_key: bool,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// `kage validate`
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Files to check
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Check against this environment instead of the one matching each path
    #[arg(long, value_name = "NAME")]
    pub env: Option<String>,
    #[command(flatten)]
    pub identities: IdentityArgs,
    /// Ask the cluster's controller whether it can decrypt each file (POST /v1/verify)
    #[arg(long)]
    pub cluster: bool,
    #[command(flatten)]
    pub cluster_args: ClusterArgs,
}

/// `kage env …`
#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// List the environments of .kage.yaml
    List,
}

/// How to reach the cluster and its controller.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Cluster options")]
pub struct ClusterArgs {
    /// kubeconfig context (the kubeconfig comes from KUBECONFIG, else ~/.kube/config); `keys
    /// fetch --write-env`, `seal --cluster --env`, `reencrypt` and `validate --cluster` default to
    /// the environment's `cluster.context` in .kage.yaml
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Namespace of kage-controller [default: kage-system, or for the commands above the
    /// environment's `cluster.namespace`]
    #[arg(long, value_name = "NS")]
    pub controller_namespace: Option<String>,
    /// Reach the controller's HTTP API at URL instead of through the API server's service proxy
    #[arg(long, value_name = "URL")]
    pub controller_url: Option<String>,
    /// Give up on a cluster request after SECONDS
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub timeout: u64,
}

/// `kage keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List each environment's keys with their key ids
    List(KeysListArgs),
    /// Show the cluster's public keys, newest first (optionally write them to .kage.yaml)
    Fetch(KeysFetchArgs),
    /// Ask the controller for a new key and wait until it is current (admins)
    Rotate(KeysRotateArgs),
    /// Retire a key: it no longer decrypts (refused while AgeSecrets use it)
    Retire(KeysRetireArgs),
    /// Which AgeSecrets use which key (in the cluster, or in FILEs offline)
    Usage(KeysUsageArgs),
    /// Export the key ring, encrypted to an admin recipient (admins)
    Backup(KeysBackupArgs),
    /// Load a backup into the cluster's controller namespace (admins)
    Restore(KeysRestoreArgs),
}

/// `kage keys fetch`
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    kage keys fetch --context prod\n  \
    kage keys fetch --context prod --write-env prod")]
pub struct KeysFetchArgs {
    /// Replace the `recipients` of environment ENV in .kage.yaml with the cluster's keys
    #[arg(long, value_name = "ENV")]
    pub write_env: Option<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// `kage keys rotate`
#[derive(Debug, Args)]
pub struct KeysRotateArgs {
    /// Wait at most SECONDS for the new key
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pub wait: u64,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// `kage keys retire`
#[derive(Debug, Args)]
pub struct KeysRetireArgs {
    /// Key id to retire
    pub kid: String,
    /// Retire even while AgeSecrets use the key (they stop decrypting)
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// `kage keys usage`
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    kage keys usage --context prod\n  \
    kage keys usage clusters/prod/*.yaml")]
pub struct KeysUsageArgs {
    /// Read the kids of sealed files instead of the cluster (offline)
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// `kage keys backup`
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  \
    kage keys backup --context prod -r age1admin… -o prod-keys.age")]
pub struct KeysBackupArgs {
    /// Encrypt the backup to this age recipient (repeatable)
    #[arg(short = 'r', long = "recipient", value_name = "AGE1…", required = true)]
    pub recipients: Vec<String>,
    /// Write the backup to FILE (mode 0600)
    #[arg(short = 'o', long, value_name = "FILE", required = true)]
    pub output: PathBuf,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// `kage keys restore`
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  \
    kage keys restore prod-keys.age -i admin.txt --context new-prod")]
pub struct KeysRestoreArgs {
    /// Backup written by `kage keys backup`
    pub file: PathBuf,
    #[command(flatten)]
    pub identities: IdentityArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// `kage keys list`
#[derive(Debug, Args)]
pub struct KeysListArgs {
    /// Only this environment
    #[arg(long, value_name = "NAME")]
    pub env: Option<String>,
}

/// `kage sops-config`
#[derive(Debug, Args)]
pub struct SopsConfigArgs {
    /// Write here instead of .sops.yaml beside .kage.yaml (`-` for stdout)
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write nothing; fail when the file differs from what would be written (for CI)
    #[arg(long)]
    pub check: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_tree_is_consistent() {
        Cli::command().debug_assert();
    }
}
