//! Field-level encryption for personal data (ID and phone numbers) and a keyed blind index so
//! they can be looked up without being stored in clear.
//!
//! One 32-byte master key (from config, or generated into the data directory in embedded mode)
//! derives two independent keys: AES-256-GCM for the values, HMAC-SHA256 for the index. Each
//! ciphertext starts with a version byte so the scheme can change without a flag day.

use std::{io::Write, path::Path};

use aes_gcm::{
    Aes256Gcm, Nonce,
    aead::{Aead, KeyInit, Payload},
};
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::secret::Secret;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("field key must be 32 bytes, base64-encoded")]
    BadKey,
    #[error("cannot read or write key file {path}: {source}")]
    KeyFile { path: String, source: std::io::Error },
    #[error("encrypted value is corrupt or was encrypted with another key")]
    Decrypt,
}

type HmacSha256 = Hmac<Sha256>;

/// Encrypts fields and computes their blind index.
#[derive(Clone)]
pub struct FieldCipher {
    aead: Aes256Gcm,
    index_key: [u8; 32],
}

impl std::fmt::Debug for FieldCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FieldCipher([redacted])")
    }
}

fn derive(master: &[u8; 32], label: &[u8]) -> [u8; 32] {
    // HMAC as a PRF over a fixed label: a standard one-step key derivation for one master key.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(master).unwrap_or_else(|_| unreachable_hmac());
    mac.update(label);
    mac.finalize().into_bytes().into()
}

/// HMAC-SHA256 accepts keys of any length, so construction cannot fail.
fn unreachable_hmac() -> HmacSha256 {
    unreachable!("HMAC accepts any key length")
}

impl FieldCipher {
    pub fn new(master: &[u8; 32]) -> Self {
        let enc = derive(master, b"jiaxin/field-encryption/v1");
        Self { aead: Aes256Gcm::new(&enc.into()), index_key: derive(master, b"jiaxin/blind-index/v1") }
    }

    /// Parses a base64 key as given in config.
    pub fn from_base64(key: &Secret<String>) -> Result<Self, CryptoError> {
        let bytes = B64.decode(key.expose().trim()).map_err(|_| CryptoError::BadKey)?;
        let master: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::BadKey)?;
        Ok(Self::new(&master))
    }

    /// Loads the key file, creating it with a random key (mode 0600) on first run.
    pub fn load_or_create(path: &Path) -> Result<Self, CryptoError> {
        let io_err = |source| CryptoError::KeyFile { path: path.display().to_string(), source };
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_base64(&Secret::new(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut master = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut master);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(io_err)?;
                }
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(path).map_err(io_err)?;
                file.write_all(B64.encode(master).as_bytes()).map_err(io_err)?;
                file.sync_all().map_err(io_err)?;
                Ok(Self::new(&master))
            }
            Err(e) => Err(io_err(e)),
        }
    }

    /// Encrypts `plaintext`, bound to `context` (e.g. the column name) so a ciphertext cannot be
    /// moved to another field.
    pub fn encrypt(&self, context: &str, plaintext: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .aead
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext.as_bytes(), aad: context.as_bytes() })
            // AES-GCM fails only for inputs beyond 64 GiB.
            .unwrap_or_default();
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    pub fn decrypt(&self, context: &str, ciphertext: &[u8]) -> Result<String, CryptoError> {
        if ciphertext.len() < 1 + NONCE_LEN || ciphertext[0] != VERSION {
            return Err(CryptoError::Decrypt);
        }
        let (nonce, sealed) = ciphertext[1..].split_at(NONCE_LEN);
        let plain = self
            .aead
            .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: context.as_bytes() })
            .map_err(|_| CryptoError::Decrypt)?;
        String::from_utf8(plain).map_err(|_| CryptoError::Decrypt)
    }

    /// A deterministic keyed hash for equality lookups: without the key it reveals nothing, and
    /// unlike a plain hash it cannot be reversed by hashing all 10^17 possible ID numbers.
    pub fn blind_index(&self, context: &str, value: &str) -> String {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.index_key).unwrap_or_else(|_| unreachable_hmac());
        mac.update(context.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_binds_to_context() {
        let cipher = FieldCipher::new(&[7; 32]);
        let ct = cipher.encrypt("id_number", "320830199001011234");
        assert!(!ct.windows(18).any(|w| w == b"320830199001011234"));
        assert_eq!(cipher.decrypt("id_number", &ct).unwrap(), "320830199001011234");
        assert!(cipher.decrypt("phone", &ct).is_err());
        let other = FieldCipher::new(&[8; 32]);
        assert!(other.decrypt("id_number", &ct).is_err());
    }

    #[test]
    fn blind_index_is_deterministic_and_keyed() {
        let a = FieldCipher::new(&[7; 32]);
        let b = FieldCipher::new(&[8; 32]);
        assert_eq!(a.blind_index("id", "x"), a.blind_index("id", "x"));
        assert_ne!(a.blind_index("id", "x"), b.blind_index("id", "x"));
        assert_ne!(a.blind_index("id", "x"), a.blind_index("phone", "x"));
    }

    #[test]
    fn key_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("field.key");
        let first = FieldCipher::load_or_create(&path).unwrap();
        let ct = first.encrypt("c", "v");
        let second = FieldCipher::load_or_create(&path).unwrap();
        assert_eq!(second.decrypt("c", &ct).unwrap(), "v");
    }
}
