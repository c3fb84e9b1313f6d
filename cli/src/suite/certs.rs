//! The suite's own CA and certificates (rcgen), made fresh at every start: a server certificate
//! for each internal API (the provisioner's, logview's) and a client certificate for the broker,
//! which is the only caller those APIs serve (mutual TLS). Keys are written 0600.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rcgen::{CertificateParams, DnType, IsCa, Issuer, KeyPair};
use testcluster_service::tls::{ClientTlsArgs, TlsFiles};

/// Where the suite's TLS material is.
#[derive(Clone, Debug)]
pub struct SuiteCerts {
    /// The CA's certificate: what a client of an internal API trusts.
    pub ca: PathBuf,
    /// The internal APIs' server certificate and key (for 127.0.0.1 and localhost).
    pub server: (PathBuf, PathBuf),
    /// The broker's client certificate and key.
    pub broker: (PathBuf, PathBuf),
}

impl SuiteCerts {
    /// Makes the CA and certificates in `dir`.
    pub fn create(dir: &Path) -> anyhow::Result<SuiteCerts> {
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "testcluster suite CA");
        let ca_key = KeyPair::generate().context("a CA key")?;
        let ca = params.self_signed(&ca_key).context("the CA certificate")?;
        let ca_path = dir.join("ca.crt");
        std::fs::write(&ca_path, ca.pem()).context("writing the CA certificate")?;
        let issuer = Issuer::new(params, ca_key);
        let issue = |name: &str, sans: Vec<String>| -> anyhow::Result<(PathBuf, PathBuf)> {
            let mut params = CertificateParams::new(sans).context("certificate names")?;
            params.distinguished_name.push(DnType::CommonName, name);
            let key = KeyPair::generate().context("a key")?;
            let cert = params.signed_by(&key, &issuer).context("signing")?;
            let cert_path = dir.join(format!("{name}.crt"));
            let key_path = dir.join(format!("{name}.key"));
            std::fs::write(&cert_path, cert.pem()).context("writing a certificate")?;
            testcluster_sim::private_file::write(&key_path, key.serialize_pem().as_bytes())
                .context("writing a key")?;
            Ok((cert_path, key_path))
        };
        Ok(SuiteCerts {
            server: issue(
                "internal",
                vec!["127.0.0.1".to_owned(), "localhost".to_owned()],
            )?,
            broker: issue("broker", vec!["broker".to_owned()])?,
            ca: ca_path,
        })
    }

    /// An internal API's server files: its certificate, and the CA its clients need.
    pub fn server_files(&self) -> TlsFiles {
        TlsFiles {
            cert: self.server.0.clone(),
            key: self.server.1.clone(),
            client_ca: Some(self.ca.clone()),
        }
    }

    /// What the broker presents to the internal APIs.
    pub fn broker_client(&self) -> ClientTlsArgs {
        ClientTlsArgs {
            internal_ca: Some(self.ca.clone()),
            client_cert: Some(self.broker.0.clone()),
            client_key: Some(self.broker.1.clone()),
        }
    }
}
