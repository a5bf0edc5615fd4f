//! TLS to the broker (`amqps://`) and the result backend (`rediss://`): the CA that signs the
//! servers' certificates, when it is not one the system trusts (a private CA, a managed
//! service's), and this client's certificate, for servers that ask for one (mutual TLS). Both
//! from PEM files, as a Kubernetes Secret mounts them. Plain `amqp://` and `redis://` URLs
//! ignore them (with a warning). Trust differs by transport, as its library has it: for
//! `rediss://` the CA file replaces the system's roots; for `amqps://` it is added to them.
//! Both verify the server's name.

use std::path::{Path, PathBuf};

/// Where the certificates are (flags and environment variables).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// PEM file of the CA (or CAs) that sign the broker's and the result backend's
    /// certificates; without it, the system's trusted roots.
    #[arg(long, env = "ARGUS_TLS_CA_FILE")]
    pub tls_ca_file: Option<PathBuf>,
    /// PEM file of this client's certificate, for servers that require one (with
    /// ARGUS_TLS_KEY_FILE).
    #[arg(long, env = "ARGUS_TLS_CERT_FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM file of this client's private key (PKCS#8: `BEGIN PRIVATE KEY`).
    #[arg(long, env = "ARGUS_TLS_KEY_FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
}

/// The certificates, read and checked.
#[derive(Clone, Default)]
pub struct Tls {
    ca: Option<Vec<u8>>,
    client: Option<Client>,
}

#[derive(Clone)]
struct Client {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    /// The same, as the PKCS#12 bundle the AMQP transport takes.
    pkcs12: Vec<u8>,
}

/// The password of the in-memory PKCS#12 bundle (it never leaves the process).
const BUNDLE_PASSWORD: &str = "argus";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Pem { path: PathBuf, reason: String },
}

impl TlsArgs {
    /// Reads the files named, refusing what a TLS handshake would refuse later, with the file
    /// and the reason.
    pub fn load(&self) -> Result<Tls, TlsError> {
        let ca = match &self.tls_ca_file {
            Some(path) => {
                let pem = read(path)?;
                let certs = certificates(path, &pem)?;
                if certs.is_empty() {
                    return Err(pem_error(path, "holds no certificate (BEGIN CERTIFICATE)"));
                }
                // Parsed now: a block that is not X.509 would otherwise be dropped in silence
                // and surface as an unknown issuer at the first connection.
                for der in &certs {
                    p12_keystore::Certificate::from_der(der)
                        .map_err(|e| pem_error(path, format!("not an X.509 certificate: {e}")))?;
                }
                Some(pem)
            }
            None => None,
        };
        let client = match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(cert), Some(key)) => Some(client(cert, key)?),
            _ => None,
        };
        Ok(Tls { ca, client })
    }
}

impl Tls {
    /// No private CA, no client certificate: the system's roots.
    pub fn none() -> Tls {
        Tls::default()
    }

    /// For the Redis client of `rediss://` URLs.
    pub(crate) fn redis(&self) -> redis::TlsCertificates {
        redis::TlsCertificates {
            client_tls: self.client.as_ref().map(|c| redis::ClientTlsConfig {
                client_cert: c.cert_pem.clone(),
                client_key: c.key_pem.clone(),
            }),
            root_cert: self.ca.clone(),
        }
    }

    /// For the AMQP transport of `amqps://` URLs.
    pub(crate) fn amqp(&self) -> lapin::tcp::OwnedTLSConfig {
        lapin::tcp::OwnedTLSConfig {
            identity: self.client.as_ref().map(|c| lapin::tcp::OwnedIdentity {
                der: c.pkcs12.clone(),
                password: BUNDLE_PASSWORD.to_string(),
            }),
            cert_chain: self
                .ca
                .as_ref()
                .map(|pem| String::from_utf8_lossy(pem).into_owned()),
        }
    }

    /// Whether anything was configured.
    pub fn is_configured(&self) -> bool {
        self.ca.is_some() || self.client.is_some()
    }

    /// Says so when certificates are configured but `url` (`what`: the broker, the result
    /// backend) is plain: the connection is not encrypted, whatever ARGUS_TLS_* says. A mixed
    /// setup (TLS to one service only) is legitimate, so this warns rather than refuses.
    pub(crate) fn warn_if_plain(&self, url: &str, what: &str) {
        let plain = url.starts_with("amqp://") || url.starts_with("redis://");
        if self.is_configured() && plain {
            tracing::warn!(
                what,
                "ARGUS_TLS_* is set but the {what} URL is plain (amqp:// or redis://): that \
                 connection is not encrypted; use amqps:// or rediss:// for TLS"
            );
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn pem_error(path: &Path, reason: impl Into<String>) -> TlsError {
    TlsError::Pem {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<Vec<u8>>, TlsError> {
    rustls_pemfile::certs(&mut &pem[..])
        .map(|c| c.map(|c| c.as_ref().to_vec()))
        .collect::<Result<_, _>>()
        .map_err(|e| pem_error(path, format!("not PEM certificates: {e}")))
}

fn client(cert: &Path, key: &Path) -> Result<Client, TlsError> {
    let (cert_pem, key_pem) = (read(cert)?, read(key)?);
    let chain = certificates(cert, &cert_pem)?;
    if chain.is_empty() {
        return Err(pem_error(cert, "holds no certificate (BEGIN CERTIFICATE)"));
    }
    let key_der = match rustls_pemfile::read_one(&mut &key_pem[..]) {
        Ok(Some(rustls_pemfile::Item::Pkcs8Key(k))) => k.secret_pkcs8_der().to_vec(),
        Ok(Some(rustls_pemfile::Item::Pkcs1Key(_) | rustls_pemfile::Item::Sec1Key(_))) => {
            return Err(pem_error(
                key,
                "is a PKCS#1 or SEC1 key; convert it to PKCS#8 \
                 (openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pk8)",
            ))
        }
        _ => return Err(pem_error(key, "holds no private key (BEGIN PRIVATE KEY)")),
    };
    let mut store = p12_keystore::KeyStore::new();
    let certs = chain
        .iter()
        .map(|der| p12_keystore::Certificate::from_der(der))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(cert, format!("not an X.509 certificate: {e}")))?;
    store.add_entry(
        "argus",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(p12_keystore::PrivateKeyChain::new(
            key_der,
            *b"argus-client",
            certs,
        )),
    );
    let pkcs12 = store.writer(BUNDLE_PASSWORD).write().map_err(|e| {
        pem_error(
            key,
            format!("cannot bundle the key with its certificate: {e}"),
        )
    })?;
    Ok(Client {
        cert_pem,
        key_pem,
        pkcs12,
    })
}
