//! TLS on the shared server stack (issue 12's "Done when" 3): a server with mutual TLS refuses a
//! client without a certificate from the suite's CA, and serves a certificate rotated on disk from
//! the next connection on, without a restart.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use rcgen::{CertificateParams, DnType, IsCa, Issuer, KeyPair};
use testcluster_service::grpc::GrpcServer;
use testcluster_service::metrics::Metrics;
use testcluster_service::tls::{ReloadingConfig, TlsFiles};
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const BOUND: Duration = Duration::from_secs(10);

/// A CA: its certificate (PEM) and what signs with it.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("CA");
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for `name` (and, for servers, 127.0.0.1): (cert PEM, key PEM).
    fn issue(&self, name: &str) -> (String, String) {
        let params =
            CertificateParams::new(vec![name.to_owned(), "127.0.0.1".to_owned()]).expect("params");
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("signed");
        (cert.pem(), key.serialize_pem())
    }
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    // Written aside and renamed, as Kubernetes updates a mounted Secret: never half a file.
    let aside = dir.join(format!(".{name}.new"));
    std::fs::write(&aside, text).expect("write");
    std::fs::rename(&aside, &path).expect("rename");
    path
}

/// A Health check over TLS trusting `ca`, presenting `identity` when given.
async fn check(
    address: SocketAddr,
    ca: &str,
    identity: Option<&(String, String)>,
) -> Result<(), String> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    let attempt = async {
        let channel = Endpoint::from_shared(format!("https://{address}"))
            .map_err(|e| e.to_string())?
            .tls_config(tls)
            .map_err(|e| e.to_string())?
            .connect()
            .await
            .map_err(|e| format!("connect: {e:?}"))?;
        HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await
            .map(drop)
            .map_err(|status| format!("{status:?}"))
    };
    tokio::time::timeout(BOUND, attempt)
        .await
        .expect("answered in time")
}

#[tokio::test]
async fn mutual_tls_refuses_strangers_and_serves_a_rotated_certificate() {
    testcluster_service::install_crypto();
    let dir = tempfile::tempdir().expect("tempdir");
    let suite = Ca::new("suite CA");
    let server_identity = suite.issue("localhost");
    let files = TlsFiles {
        cert: write(dir.path(), "tls.crt", &server_identity.0),
        key: write(dir.path(), "tls.key", &server_identity.1),
        client_ca: Some(write(dir.path(), "ca.crt", &suite.pem)),
    };
    let config = ReloadingConfig::load(files).expect("TLS files load");
    let listener = testcluster_service::grpc::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let shutdown = CancellationToken::new();
    let _guard = shutdown.clone().drop_guard();
    tokio::spawn(
        GrpcServer::new(&Metrics::new())
            .tls(config)
            .serve(listener, shutdown),
    );

    let member = suite.issue("broker");
    check(address, &suite.pem, Some(&member))
        .await
        .expect("a client with a suite certificate is served");
    check(address, &suite.pem, None)
        .await
        .expect_err("a client without a certificate is refused");
    let stranger = Ca::new("another CA").issue("broker");
    check(address, &suite.pem, Some(&stranger))
        .await
        .expect_err("a client with another CA's certificate is refused");

    // The server's certificate is rotated on disk, to one from a new CA: clients that trust only
    // the new CA are served from the next connection, with no restart.
    let renewed = Ca::new("renewed CA");
    check(address, &renewed.pem, Some(&member))
        .await
        .expect_err("before the rotation, the old certificate is served");
    let rotated = renewed.issue("localhost");
    write(dir.path(), "tls.key", &rotated.1);
    write(dir.path(), "tls.crt", &rotated.0);
    check(address, &renewed.pem, Some(&member))
        .await
        .expect("the rotated certificate is served");
    check(address, &suite.pem, Some(&member))
        .await
        .expect_err("the old certificate is not served any more");
}
