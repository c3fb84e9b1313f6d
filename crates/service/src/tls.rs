//! TLS for the gRPC servers (rustls, ring): the certificate, its key and, for mutual TLS, the CA
//! that signs clients' certificates are read from files, and read again when a file changes, so
//! that a rotated certificate (cert-manager renewing a Secret, a kubelet updating its volume) is
//! served from the next connection on, without a restart.
//!
//! Each new connection compares the files' modification times and sizes with those of the
//! configuration in use (three `stat`s); only a change rebuilds it. A set of files that does not
//! load (a half-written rotation) leaves the previous configuration in force, with a warning.
//!
//! Handshakes run beside the accept loop, bounded in number and time, so that a client that
//! connects and sends nothing holds up no one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

/// Handshakes in progress at once; more connections wait to be accepted.
const MAX_HANDSHAKES: usize = 1024;
/// How long a handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a server's TLS material is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// The certificate's private key (PEM, PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by one of these CAs (PEM): mutual TLS.
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: {what}")]
    Invalid { path: PathBuf, what: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The files' identity: their modification times and sizes.
type Stamp = Vec<(SystemTime, u64)>;

/// The server configuration from [`TlsFiles`], rebuilt when they change.
pub struct ReloadingConfig {
    files: TlsFiles,
    current: Mutex<Option<(Stamp, Arc<ServerConfig>)>>,
}

impl ReloadingConfig {
    /// Loads the files once, so that a server with unusable TLS material fails at start.
    pub fn load(files: TlsFiles) -> Result<Arc<ReloadingConfig>, TlsError> {
        let config = Arc::new(ReloadingConfig {
            files,
            current: Mutex::new(None),
        });
        config.config()?;
        Ok(config)
    }

    /// The configuration for a new connection.
    pub fn config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let stamp = self.stamp();
        let mut current = self.current.lock();
        if let (Ok(stamp), Some((seen, config))) = (&stamp, current.as_ref())
            && stamp == seen
        {
            return Ok(config.clone());
        }
        match stamp.and_then(|stamp| Ok((stamp, Arc::new(build(&self.files)?)))) {
            Ok((stamp, config)) => {
                if current.is_some() {
                    tracing::info!(cert = %self.files.cert.display(), "TLS files changed; serving the new certificate");
                }
                *current = Some((stamp, config.clone()));
                Ok(config)
            }
            Err(error) => match current.as_ref() {
                Some((_, config)) => {
                    tracing::warn!(%error, "TLS files do not load; keeping the previous ones");
                    Ok(config.clone())
                }
                None => Err(error),
            },
        }
    }

    fn stamp(&self) -> Result<Stamp, TlsError> {
        let files = &self.files;
        [
            Some(&files.cert),
            Some(&files.key),
            files.client_ca.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(|path| {
            let metadata = std::fs::metadata(path).map_err(|error| TlsError::Read {
                path: path.clone(),
                error,
            })?;
            Ok((
                metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                metadata.len(),
            ))
        })
        .collect()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Read {
        path: path.to_owned(),
        error,
    })
}

fn build(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let invalid = |path: &Path, what: String| TlsError::Invalid {
        path: path.to_owned(),
        what,
    };
    let certs = rustls_pemfile::certs(&mut read(&files.cert)?.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(&files.cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(invalid(&files.cert, "no certificate".to_owned()));
    }
    // The key's error says where, never what it holds.
    let key = rustls_pemfile::private_key(&mut read(&files.key)?.as_slice())
        .map_err(|_| invalid(&files.key, "not a PEM private key".to_owned()))?
        .ok_or_else(|| invalid(&files.key, "no private key".to_owned()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match &files.client_ca {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for ca in rustls_pemfile::certs(&mut read(path)?.as_slice()) {
                let ca = ca.map_err(|e| invalid(path, e.to_string()))?;
                roots.add(ca).map_err(|e| invalid(path, e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(invalid(path, "no CA certificate".to_owned()));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// The connections `listener` accepts, after their TLS handshake with the configuration of the
/// moment. Failed handshakes (a client without an acceptable certificate) are logged at debug and
/// dropped. The stream ends when its receiver is dropped.
pub fn incoming(
    listener: TcpListener,
    config: Arc<ReloadingConfig>,
) -> ReceiverStream<std::io::Result<TlsStream<TcpStream>>> {
    let (sender, receiver) = mpsc::channel(64);
    tokio::spawn(async move {
        let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
        loop {
            let Ok(permit) = handshakes.clone().acquire_owned().await else {
                return;
            };
            let accepted = tokio::select! {
                () = sender.closed() => return,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection");
                    continue;
                }
            };
            // As for plain connections (see `GrpcServer::serve`): no Nagle delay on trailers.
            let _ = stream.set_nodelay(true);
            let acceptor = match config.config() {
                Ok(config) => TlsAcceptor::from(config),
                Err(error) => {
                    tracing::error!(%error, "no TLS configuration; refusing the connection");
                    continue;
                }
            };
            let sender = sender.clone();
            tokio::spawn(async move {
                let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                match handshake.await {
                    Ok(Ok(tls)) => {
                        let _ = sender.send(Ok(tls)).await;
                    }
                    Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
                drop(permit);
            });
        }
    });
    ReceiverStream::new(receiver)
}

/// A server's TLS flags: `--tls-cert` and `--tls-key` for TLS, and `--tls-client-ca` for mutual
/// TLS; plaintext only with `--plaintext`, and only on a loopback address.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ServerTlsArgs {
    /// The server's certificate chain (PEM); re-read when it changes.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM); re-read when it changes.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// CA certificates (PEM) that sign the clients' certificates: mutual TLS, clients without
    /// one are refused. For internal APIs: the suite's CA.
    #[arg(long, requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Serve without TLS. Allowed on a loopback address only (development, `tcctl up`).
    #[arg(long, conflicts_with = "tls_cert")]
    pub plaintext: bool,
}

impl ServerTlsArgs {
    /// The files, when TLS is asked for.
    pub fn files(&self) -> Option<TlsFiles> {
        Some(TlsFiles {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
            client_ca: self.tls_client_ca.clone(),
        })
    }
}

/// What a suite service presents to another's internal API: the CA that signed the server's
/// certificate, and its own certificate and key.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ClientTlsArgs {
    /// CA certificate (PEM) of the internal APIs' server certificates; with it, those are reached
    /// over TLS, presenting --client-cert.
    #[arg(long, requires_all = ["client_cert", "client_key"])]
    pub internal_ca: Option<PathBuf>,
    /// This service's client certificate (PEM) for the internal APIs.
    #[arg(long)]
    pub client_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long)]
    pub client_key: Option<PathBuf>,
}

impl ClientTlsArgs {
    /// tonic's client configuration, read now (a channel keeps it; a rotated client certificate
    /// is used from the service's next start). `None`: plaintext.
    pub fn config(&self) -> Result<Option<tonic::transport::ClientTlsConfig>, TlsError> {
        let (Some(ca), Some(cert), Some(key)) =
            (&self.internal_ca, &self.client_cert, &self.client_key)
        else {
            return Ok(None);
        };
        Ok(Some(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(read(ca)?))
                .identity(tonic::transport::Identity::from_pem(
                    read(cert)?,
                    read(key)?,
                )),
        ))
    }
}

/// The server's TLS files from `args`, or `None` for plaintext: asked for with `--plaintext`, and
/// refused unless `listen` is a loopback address.
pub fn server_files(
    args: &ServerTlsArgs,
    listen: std::net::SocketAddr,
) -> anyhow::Result<Option<TlsFiles>> {
    match args.files() {
        Some(files) => Ok(Some(files)),
        None if args.plaintext && listen.ip().is_loopback() => Ok(None),
        None if args.plaintext => anyhow::bail!(
            "--plaintext: {listen} is not a loopback address; serve it with --tls-cert and --tls-key"
        ),
        None => anyhow::bail!(
            "no TLS: give --tls-cert and --tls-key (and --tls-client-ca for mutual TLS), or \
             --plaintext on a loopback address"
        ),
    }
}
