//! Token-signing keys: created on first start, rotated on request, private halves encrypted at
//! rest with the field key, public halves published to every verifier.

use std::sync::Arc;

use async_trait::async_trait;
use ed25519_dalek::SigningKey;
use jiaxin_kit::{
    auth::{KeySource, TokenSigner},
    crypto::FieldCipher,
    storage::Database,
    time::now_micros,
};
use rand::rngs::OsRng;
use tokio::sync::RwLock;

use crate::{
    error::{IdentityError, Result},
    store::{self, SigningKeyRow},
};

const KEY_CONTEXT: &str = "signing_keys.private_key";

pub struct Keys {
    db: Database,
    cipher: FieldCipher,
    active: RwLock<Option<Arc<TokenSigner>>>,
}

impl Keys {
    pub fn new(db: Database, cipher: FieldCipher) -> Self {
        Self { db, cipher, active: RwLock::new(None) }
    }

    /// Creates the first key when there is none.
    pub async fn ensure_active(&self) -> Result<()> {
        let keys = store::signing_keys(self.db.pool()).await?;
        if !keys.iter().any(|k| k.active == 1) {
            self.rotate().await?;
        }
        Ok(())
    }

    /// The signer for new tokens.
    pub async fn signer(&self) -> Result<Arc<TokenSigner>> {
        if let Some(signer) = self.active.read().await.clone() {
            return Ok(signer);
        }
        let rows = store::signing_keys(self.db.pool()).await?;
        let row = rows
            .into_iter()
            .find(|k| k.active == 1)
            .ok_or_else(|| IdentityError::Internal("no active signing key".into()))?;
        let secret = self.cipher.decrypt(KEY_CONTEXT, &row.private_key_ct)?;
        let bytes: [u8; 32] = hex::decode(secret)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| IdentityError::Internal("stored signing key is malformed".into()))?;
        let signer = Arc::new(TokenSigner::new(row.kid, SigningKey::from_bytes(&bytes)));
        *self.active.write().await = Some(signer.clone());
        Ok(signer)
    }

    /// Makes a new key the active one. Earlier keys stay published, so tokens they signed keep
    /// verifying until they expire.
    pub async fn rotate(&self) -> Result<String> {
        let key = SigningKey::generate(&mut OsRng);
        let kid = format!("k{}", uuid::Uuid::now_v7().simple());
        let row = SigningKeyRow {
            kid: kid.clone(),
            public_key: key.verifying_key().to_bytes().to_vec(),
            private_key_ct: self.cipher.encrypt(KEY_CONTEXT, &hex::encode(key.to_bytes())),
            active: 1,
            created_at: now_micros(),
        };
        let mut tx = self.db.begin().await?;
        store::deactivate_signing_keys(&mut *tx).await?;
        store::insert_signing_key(&mut *tx, &row).await?;
        tx.commit().await?;
        *self.active.write().await = None;
        tracing::info!(kid = %kid, "token signing key rotated");
        Ok(kid)
    }

    pub async fn public_keys(&self) -> Result<Vec<SigningKeyRow>> {
        Ok(store::signing_keys(self.db.pool()).await?)
    }
}

/// Identity's own keys as a [`KeySource`], for verifiers in the same process.
pub struct LocalKeySource(pub Arc<Keys>);

#[async_trait]
impl KeySource for LocalKeySource {
    async fn public_keys(&self) -> std::result::Result<Vec<(String, [u8; 32])>, String> {
        let rows = self.0.public_keys().await.map_err(|e| e.to_string())?;
        Ok(rows.into_iter().filter_map(|row| row.public_key.try_into().ok().map(|k: [u8; 32]| (row.kid, k))).collect())
    }
}
