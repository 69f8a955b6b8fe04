//! Certificates for the TLS tests, made at test time (nothing secret is
//! committed): a certificate authority and a server certificate it signed
//! for `127.0.0.1`, as PEM text or as files.
//!
//! Behind the `pki` feature, so only the packages with TLS tests build rcgen.

use std::path::{Path, PathBuf};

use crate::{write_private, Error, Result};

/// A CA and a certificate for `127.0.0.1` it signed, as PEM text.
#[derive(Clone)]
pub struct Pki {
    /// The authority's certificate (what a client trusts: `--tls-ca`).
    pub ca_pem: String,
    /// The server's certificate (`--tls-cert`).
    pub cert_pem: String,
    /// The server's private key (`--tls-key`).
    pub key_pem: String,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is test material, but it is still a key: not printed.
        f.debug_struct("Pki").finish_non_exhaustive()
    }
}

/// Where [`Pki::write_to`] put the three PEM files.
#[derive(Debug, Clone)]
pub struct PkiFiles {
    /// `ca.pem`.
    pub ca: PathBuf,
    /// `cert.pem`.
    pub cert: PathBuf,
    /// `key.pem`, readable by its owner only on Unix.
    pub key: PathBuf,
}

fn rcgen_error(what: &str, e: rcgen::Error) -> Error {
    Error::new(format!("cannot make the test {what}: {e}"))
}

impl Pki {
    /// A fresh authority and server certificate.
    pub fn new() -> Result<Pki> {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())
            .map_err(|e| rcgen_error("CA", e))?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "trama test CA");
        let ca_key = rcgen::KeyPair::generate().map_err(|e| rcgen_error("CA key", e))?;
        let ca = ca_params
            .self_signed(&ca_key)
            .map_err(|e| rcgen_error("CA", e))?;
        let leaf_key = rcgen::KeyPair::generate().map_err(|e| rcgen_error("server key", e))?;
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .and_then(|p| p.signed_by(&leaf_key, &ca, &ca_key))
            .map_err(|e| rcgen_error("server certificate", e))?;
        Ok(Pki {
            ca_pem: ca.pem(),
            cert_pem: leaf.pem(),
            key_pem: leaf_key.serialize_pem(),
        })
    }

    /// Write `ca.pem`, `cert.pem` and `key.pem` (owner-only on Unix, as the
    /// apps demand of a key) into `dir`, which must exist.
    pub fn write_to(&self, dir: &Path) -> Result<PkiFiles> {
        let files = PkiFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        let write = |path: &Path, text: &str| {
            std::fs::write(path, text)
                .map_err(|e| Error::new(format!("cannot write {}: {e}", path.display())))
        };
        write(&files.ca, &self.ca_pem)?;
        write(&files.cert, &self.cert_pem)?;
        write_private(&files.key, &self.key_pem)?;
        Ok(files)
    }
}
