//! Signing keys at rest: the `signing_keys` table, the encryption of private keys
//! (`DOORMAN_KEY_ENCRYPTION_KEY_FILE`), and what the operator's `doorman keys`
//! commands do (list, rotate, retire). Signing and verifying are in `tokens`.
//!
//! A key is *active* until retired. The newest active key signs; every active key
//! verifies. Running instances re-read the active keys every second, so a rotation
//! or a retirement reaches all of them within about a second.

use std::path::Path;

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use chacha20poly1305::{
    ChaCha20Poly1305, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use ed25519_dalek::{
    SigningKey,
    pkcs8::{EncodePrivateKey, spki::der::pem::LineEnding},
};
use entity::signing_key;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    sea_query::Expr,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::{Error, RevocationReason, db::Db};

/// The JWS algorithm of every signing key (Ed25519), as tokens and the JWKS name it.
pub const ALGORITHM: &str = "EdDSA";
/// Marks a private key stored encrypted: `enc:v1:` + base64(nonce ‖ ciphertext).
const SEALED: &str = "enc:v1:";

/// The key that encrypts private signing keys at rest: ChaCha20-Poly1305, with the
/// key id as associated data, so a sealed key cannot be moved to another row.
pub struct KeyCipher(ChaCha20Poly1305);

impl KeyCipher {
    /// Reads 32 random bytes, base64-encoded, from `path`.
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::caused(
                format!("DOORMAN_KEY_ENCRYPTION_KEY_FILE {}", path.display()),
                e,
            )
        })?;
        let bytes = STANDARD
            .decode(text.trim())
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| {
                Error::internal(format!(
                    "DOORMAN_KEY_ENCRYPTION_KEY_FILE {} must hold 32 random bytes in base64 \
                 (e.g. `head -c 32 /dev/urandom | base64`)",
                    path.display()
                ))
            })?;
        let cipher = ChaCha20Poly1305::new_from_slice(&bytes)
            .map_err(|_| Error::internal("the key-encryption key has the wrong length"))?;
        Ok(Self(cipher))
    }

    fn seal(&self, kid: &str, pem: &str) -> Result<String, Error> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|e| Error::caused("no randomness", e))?;
        let sealed = self
            .0
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: pem.as_bytes(),
                    aad: kid.as_bytes(),
                },
            )
            .map_err(|_| Error::internal("could not encrypt a signing key"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{SEALED}{}", STANDARD.encode(out)))
    }

    fn open(&self, kid: &str, stored: &str) -> Result<String, Error> {
        let wrong = || {
            Error::internal(format!(
                "signing key {kid} cannot be decrypted: DOORMAN_KEY_ENCRYPTION_KEY_FILE holds \
                 another key than the one it was encrypted with"
            ))
        };
        let raw = STANDARD
            .decode(stored.strip_prefix(SEALED).unwrap_or_default())
            .map_err(|_| wrong())?;
        if raw.len() < 12 {
            return Err(wrong());
        }
        let (nonce, sealed) = raw.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| wrong())?;
        let pem = self
            .0
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: kid.as_bytes(),
                },
            )
            .map_err(|_| wrong())?;
        String::from_utf8(pem).map_err(|_| wrong())
    }
}

/// An active key, its private key decrypted if this process can.
pub struct ActiveKey {
    /// The key id, the `kid` of the tokens it signs.
    pub kid: String,
    /// When the key was made; the newest active key signs.
    pub created_at: OffsetDateTime,
    /// PKCS#8 PEM, or why this process cannot decrypt it (no key-encryption key,
    /// or another one).
    pub private_pem: Result<String, Error>,
    /// The JWK `x` (base64url).
    pub public_x: String,
}

/// A key as `doorman keys list` shows it.
pub struct KeyInfo {
    /// The key id, the `kid` of the tokens it signs.
    pub kid: String,
    /// When the key was made.
    pub created_at: OffsetDateTime,
    /// When it was retired (its tokens refused from then on); `None` while active.
    pub retired_at: Option<OffsetDateTime>,
    /// Whether its private key is stored encrypted with the key-encryption key.
    pub encrypted: bool,
}

/// The `signing_keys` table.
pub struct KeyStore {
    db: Db,
    cipher: Option<KeyCipher>,
}

impl KeyStore {
    /// The store over `db`; `cipher` seals new keys and opens encrypted ones.
    pub fn new(db: Db, cipher: Option<KeyCipher>) -> Self {
        Self { db, cipher }
    }

    /// The active keys, newest first, each private key decrypted when this process
    /// can: verifying needs only the public keys, which are never encrypted, so an
    /// instance without the key-encryption key (or with another one) still verifies
    /// every active key and sees every retirement. Only signing needs a private key.
    pub async fn active(&self) -> Result<Vec<ActiveKey>, Error> {
        let rows = signing_key::Entity::find()
            .filter(signing_key::Column::RetiredAt.is_null())
            .filter(signing_key::Column::Algorithm.eq(ALGORITHM))
            .order_by_desc(signing_key::Column::CreatedAt)
            .order_by_desc(signing_key::Column::Kid)
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|m| {
                let private_pem = if m.private_key.starts_with(SEALED) {
                    match self.cipher.as_ref() {
                        Some(cipher) => cipher.open(&m.kid, &m.private_key),
                        None => Err(Error::internal(format!(
                            "signing key {} is encrypted; set DOORMAN_KEY_ENCRYPTION_KEY_FILE \
                             to the file holding its key-encryption key",
                            m.kid
                        ))),
                    }
                } else {
                    Ok(m.private_key)
                };
                ActiveKey {
                    kid: m.kid,
                    created_at: m.created_at,
                    private_pem,
                    public_x: m.public_key,
                }
            })
            .collect())
    }

    /// The active keys, newest first, every private key decrypted: an encrypted key
    /// without the key-encryption key, or with another one, is an error (what a
    /// start and `doorman keys` need: never a silent new key, never a key sealed
    /// with another key-encryption key).
    pub async fn active_opened(&self) -> Result<Vec<ActiveKey>, Error> {
        let mut keys = self.active().await?;
        if let Some(i) = keys.iter().position(|k| k.private_pem.is_err())
            && let Err(e) = keys.swap_remove(i).private_pem
        {
            return Err(e);
        }
        Ok(keys)
    }

    /// Every key, newest first.
    pub async fn list(&self) -> Result<Vec<KeyInfo>, Error> {
        Ok(signing_key::Entity::find()
            .order_by_desc(signing_key::Column::CreatedAt)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|m| KeyInfo {
                encrypted: m.private_key.starts_with(SEALED),
                kid: m.kid,
                created_at: m.created_at,
                retired_at: m.retired_at,
            })
            .collect())
    }

    /// Creates the first key unless there is one: instances starting together on
    /// an empty database make exactly one between them (the check and the insert
    /// run in one [`exclusive`](super::db::exclusive) transaction). Returns the id
    /// of the key created, if this call created it.
    pub async fn create_first(&self) -> Result<Option<String>, Error> {
        let (kid, key) = self.new_key()?;
        let created = super::db::exclusive(self.db.connection(), async |txn| {
            let any = signing_key::Entity::find()
                .filter(signing_key::Column::RetiredAt.is_null())
                .one(txn)
                .await?
                .is_some();
            if any {
                return Ok(false);
            }
            key.insert(txn).await?;
            Ok(true)
        })
        .await?;
        if created {
            tracing::info!(kid = %kid, "created the first signing key");
        }
        Ok(created.then_some(kid))
    }

    /// Creates a key (encrypted when a key-encryption key is set); it signs from
    /// now on, on every instance, as the newest active key. Returns its id.
    pub async fn create(&self) -> Result<String, Error> {
        let (kid, key) = self.new_key()?;
        key.insert(&self.db).await?;
        tracing::info!(kid = %kid, "created a new signing key");
        Ok(kid)
    }

    /// A fresh key's id and row, sealed when a key-encryption key is set.
    fn new_key(&self) -> Result<(String, signing_key::ActiveModel), Error> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| Error::caused("no randomness", e))?;
        let key = SigningKey::from_bytes(&seed);
        let pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| Error::caused("encoding a key", e))?;
        let x = URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes());
        let kid = thumbprint(&x);
        let private_key = match &self.cipher {
            Some(cipher) => cipher.seal(&kid, &pem)?,
            None => pem.to_string(),
        };
        let row = signing_key::ActiveModel {
            kid: Set(kid.clone()),
            algorithm: Set(ALGORITHM.to_owned()),
            private_key: Set(private_key),
            public_key: Set(x),
            created_at: Set(OffsetDateTime::now_utc()),
            retired_at: Set(None),
        };
        Ok((kid, row))
    }

    /// Retires a key: every instance refuses its tokens within about a second and
    /// the JWKS drops it. The last active key cannot be retired (nothing could sign).
    ///
    /// With `revoke_sessions` (the key leaked: it can mint a token for any session)
    /// every active session is revoked in the same transaction, so an instance that
    /// sees the key retired finds the sessions revoked too; returns how many.
    pub async fn retire(&self, kid: &str, revoke_sessions: bool) -> Result<u64, Error> {
        // One transaction holding every active key's row (FOR UPDATE on PostgreSQL;
        // SQLite runs one writer at a time): two retirements at once cannot each see
        // the other key still active and leave none.
        let kid_owned = kid.to_owned();
        let outcome = self
            .db
            .transaction(async |txn| {
                let active = signing_key::Entity::find()
                    .filter(signing_key::Column::RetiredAt.is_null())
                    .lock_exclusive()
                    .all(txn)
                    .await?;
                if !active.iter().any(|k| k.kid == kid_owned) {
                    let known = signing_key::Entity::find_by_id(kid_owned.clone())
                        .one(txn)
                        .await?
                        .is_some();
                    return Ok(Err(if known {
                        format!("signing key {kid_owned} is already retired")
                    } else {
                        format!("no signing key {kid_owned}")
                    }));
                }
                if active.len() < 2 {
                    return Ok(Err(format!(
                        "{kid_owned} is the only active key; `doorman keys rotate` first"
                    )));
                }
                let revoked = if revoke_sessions {
                    super::sessions::revoke_every(txn, RevocationReason::Operator).await?
                } else {
                    0
                };
                signing_key::Entity::update_many()
                    .col_expr(
                        signing_key::Column::RetiredAt,
                        Expr::value(OffsetDateTime::now_utc()),
                    )
                    .filter(signing_key::Column::Kid.eq(kid_owned.as_str()))
                    .exec(txn)
                    .await?;
                Ok(Ok(revoked))
            })
            .await?;
        let revoked = outcome.map_err(Error::Invalid)?;
        tracing::info!(kid = %kid, revoked_sessions = revoked, "retired a signing key");
        Ok(revoked)
    }

    /// Encrypts every key still stored in plain PEM (first start with a
    /// key-encryption key); returns how many. Nothing to do without one.
    pub async fn seal_plain_keys(&self) -> Result<usize, Error> {
        let Some(cipher) = &self.cipher else {
            return Ok(0);
        };
        let plain = signing_key::Entity::find()
            .filter(signing_key::Column::PrivateKey.not_like(format!("{SEALED}%")))
            .all(&self.db)
            .await?;
        for m in &plain {
            let sealed = cipher.seal(&m.kid, &m.private_key)?;
            signing_key::Entity::update_many()
                .col_expr(signing_key::Column::PrivateKey, Expr::value(sealed))
                .filter(signing_key::Column::Kid.eq(&m.kid))
                // Another instance may have sealed it meanwhile: leave that alone.
                .filter(signing_key::Column::PrivateKey.eq(&m.private_key))
                .exec(&self.db)
                .await?;
        }
        if !plain.is_empty() {
            tracing::info!(
                keys = plain.len(),
                "encrypted signing keys stored in plain text"
            );
        }
        Ok(plain.len())
    }
}

/// RFC 7638 JWK thumbprint of an Ed25519 public key: a stable, unique `kid`.
fn thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher(byte: u8) -> KeyCipher {
        KeyCipher(ChaCha20Poly1305::new_from_slice(&[byte; 32]).unwrap())
    }

    #[test]
    fn a_sealed_key_opens_only_with_its_key_and_its_kid() {
        let sealed = cipher(1).seal("kid-a", "pem text").unwrap();
        assert!(sealed.starts_with(SEALED));
        assert!(!sealed.contains("pem text"));
        assert_eq!(cipher(1).open("kid-a", &sealed).unwrap(), "pem text");
        assert!(cipher(2).open("kid-a", &sealed).is_err());
        assert!(cipher(1).open("kid-b", &sealed).is_err());
    }
}
