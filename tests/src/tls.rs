//! The generated CA and serving certificate, and the rustls server config (ring provider,
//! installed explicitly: never the process default).

use anyhow::{Context as _, Result};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::sync::Arc;

/// A CA and a serving certificate for 127.0.0.1, ::1 and localhost.
pub struct Certs {
    /// The CA certificate, PEM (goes into the kubeconfig).
    pub ca_pem: String,
    /// The CA certificate, DER.
    pub ca_der: Vec<u8>,
    /// The serving certificate, DER.
    pub cert_der: Vec<u8>,
    /// The serving key, PKCS#8 DER.
    pub key_der: Vec<u8>,
}

/// Generate a fresh CA and serving certificate.
pub fn generate() -> Result<Certs> {
    let ca_key = KeyPair::generate().context("generating the CA key")?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).context("CA params")?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "kage-testcluster-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .context("self-signing the CA")?;
    let issuer = Issuer::new(ca_params, ca_key);

    let key = KeyPair::generate().context("generating the serving key")?;
    let mut params = CertificateParams::new(vec![
        "127.0.0.1".to_string(),
        "::1".to_string(),
        "localhost".to_string(),
        "kubernetes.default.svc".to_string(),
    ])
    .context("serving cert params")?;
    params
        .distinguished_name
        .push(DnType::CommonName, "kage-testcluster");
    let cert = params
        .signed_by(&key, &issuer)
        .context("signing the serving cert")?;
    Ok(Certs {
        ca_pem: ca_cert.pem(),
        ca_der: ca_cert.der().to_vec(),
        cert_der: cert.der().to_vec(),
        key_der: key.serialize_der(),
    })
}

/// A rustls server config with the ring provider, HTTP/2 and HTTP/1.1 by ALPN.
pub fn server_config(certs: &Certs) -> Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = vec![
        CertificateDer::from(certs.cert_der.clone()),
        CertificateDer::from(certs.ca_der.clone()),
    ];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certs.key_der.clone()));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("TLS serving certificate")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Make ring the process-wide provider for clients that need one (kube's rustls
/// client). Installing twice is harmless.
pub fn install_ring_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
