//! Access tokens: EdDSA-signed JWTs with a `kid`, verified with the algorithm pinned.
//! The signing key lives in the database, so every instance on one database signs
//! and verifies with the same keys.

use std::{
    collections::HashMap,
    sync::{Mutex, RwLock},
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::{
    SigningKey,
    pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding},
};
use entity::signing_key;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{AuthError, SessionId, UserId, cache::Cache};
use super::{Error, db::Db};

/// The audience every doorman access token is minted for.
pub const AUDIENCE: &str = "doorman";
const ALGORITHM: &str = "EdDSA";

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: Uuid,
    pub sid: Uuid,
    pub iat: i64,
    pub exp: i64,
    pub jti: Uuid,
}

/// A freshly minted access token.
pub struct AccessToken {
    pub token: String,
    pub expires_in: u64,
}

/// Signs and verifies access tokens; serves the JWKS.
pub struct TokenKeys {
    db: Db,
    issuer: String,
    ttl: Duration,
    signing_kid: String,
    encoding: EncodingKey,
    validation: Validation,
    verifying: RwLock<VerifyingKeys>,
    last_reload: Mutex<Option<Instant>>,
    /// Tokens whose signature and claims were verified, by their exact text: a
    /// signature check costs tens of microseconds, a lookup far less. A forged token
    /// cannot hit, as it differs from every verified one.
    verified: Cache<String, AccessClaims>,
    /// A secret for other MACs of this deployment, derived from the signing key.
    derived_secret: [u8; 32],
}

/// Clock skew tolerated on `exp`, as `Validation::leeway`.
const LEEWAY_SECS: i64 = 5;

struct VerifyingKeys {
    by_kid: HashMap<String, DecodingKey>,
    public: Vec<PublicKey>,
}

/// A public verification key, as the JWKS shows it.
#[derive(Debug, Clone)]
pub struct PublicKey {
    pub kid: String,
    /// The JWS algorithm (`EdDSA`).
    pub alg: &'static str,
    /// The raw Ed25519 public key, base64url without padding (the JWK `x`).
    pub x: String,
}

impl TokenKeys {
    /// Loads the active signing keys, creating the first one on an empty database.
    pub async fn load_or_create(db: Db, issuer: String, ttl: Duration) -> Result<Self, Error> {
        let mut keys = active_keys(&db).await?;
        if keys.is_empty() {
            insert_new_key(&db).await?;
            keys = active_keys(&db).await?;
        }
        // Instances starting together on an empty database may each insert a key;
        // all of them sign with the oldest, and verify with every active one.
        let signing = keys
            .iter()
            .min_by(|a, b| (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid)))
            .ok_or_else(|| Error::internal("no signing key"))?;
        let der = SigningKey::from_pkcs8_pem(&signing.private_key)
            .and_then(|k| k.to_pkcs8_der())
            .map_err(|e| Error::internal(format!("signing key {}: {e}", signing.kid)))?;
        let encoding = EncodingKey::from_ed_der(der.as_bytes());
        // Every instance signs with the same (oldest) key, so each derives the same
        // secret without another table; a label keeps it apart from any other use.
        let mut derive = Sha256::new();
        derive.update(b"doorman derived secret v1\0");
        derive.update(der.as_bytes());
        let derived_secret: [u8; 32] = derive.finalize().into();

        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&issuer]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS as u64;

        Ok(Self {
            signing_kid: signing.kid.clone(),
            encoding,
            validation,
            verifying: RwLock::new(VerifyingKeys::from_models(&keys)?),
            last_reload: Mutex::new(None),
            verified: Cache::new(None, 100_000),
            derived_secret,
            db,
            issuer,
            ttl,
        })
    }

    /// A 32-byte secret shared by every instance on this database, for MACs that
    /// must not be forgeable (device cookies). It changes when the signing key does.
    pub fn derived_secret(&self) -> [u8; 32] {
        self.derived_secret
    }

    /// Mints an access token for a session.
    pub fn issue(&self, user: UserId, session: SessionId) -> Result<AccessToken, Error> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: AUDIENCE.to_owned(),
            sub: user.0,
            sid: session.0,
            iat: now,
            exp: now + self.ttl.as_secs() as i64,
            jti: Uuid::new_v4(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.signing_kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|e| Error::internal(format!("signing an access token: {e}")))?;
        Ok(AccessToken {
            token,
            expires_in: self.ttl.as_secs(),
        })
    }

    /// Verifies signature, algorithm, `kid`, `iss`, `aud` and `exp`. Says nothing of
    /// the session; the resolver checks that.
    pub async fn verify(&self, token: &str) -> Result<AccessClaims, AuthError> {
        if let Some(claims) = self.verified.get(token) {
            return if OffsetDateTime::now_utc().unix_timestamp() <= claims.exp + LEEWAY_SECS {
                Ok(claims)
            } else {
                Err(AuthError::InvalidToken)
            };
        }
        // Boxed: the slow path's future (which may read keys from the database) is
        // large, and inlining it would make every caller's future as large, to be
        // copied on every request even when the cache answers.
        let claims = Box::pin(self.verify_signature(token)).await?;
        self.verified.insert(token.to_owned(), claims.clone());
        Ok(claims)
    }

    async fn verify_signature(&self, token: &str) -> Result<AccessClaims, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::InvalidToken)?;
        if header.alg != Algorithm::EdDSA {
            return Err(AuthError::InvalidToken);
        }
        let kid = header.kid.ok_or(AuthError::InvalidToken)?;
        if let Some(result) = self.verify_with(&kid, token) {
            return result;
        }
        // A kid we do not know may belong to a key another instance just created.
        if self.reload_keys().await
            && let Some(result) = self.verify_with(&kid, token)
        {
            return result;
        }
        Err(AuthError::InvalidToken)
    }

    fn verify_with(&self, kid: &str, token: &str) -> Option<Result<AccessClaims, AuthError>> {
        let keys = self.verifying.read().unwrap_or_else(|e| e.into_inner());
        let key = keys.by_kid.get(kid)?;
        Some(
            jsonwebtoken::decode::<AccessClaims>(token, key, &self.validation)
                .map(|data| data.claims)
                .map_err(|_| AuthError::InvalidToken),
        )
    }

    /// Re-reads the active keys, at most once a second (unknown kids are cheap to send).
    async fn reload_keys(&self) -> bool {
        {
            let mut last = self.last_reload.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                return false;
            }
            *last = Some(Instant::now());
        }
        let Ok(models) = active_keys(&self.db).await else {
            return false;
        };
        let Ok(keys) = VerifyingKeys::from_models(&models) else {
            return false;
        };
        *self.verifying.write().unwrap_or_else(|e| e.into_inner()) = keys;
        true
    }

    /// The keys that verify access tokens, for the JWKS.
    pub fn public_keys(&self) -> Vec<PublicKey> {
        self.verifying
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .public
            .clone()
    }
}

impl VerifyingKeys {
    fn from_models(models: &[signing_key::Model]) -> Result<Self, Error> {
        let mut by_kid = HashMap::new();
        let mut public = Vec::new();
        for m in models {
            let key = DecodingKey::from_ed_components(&m.public_key)
                .map_err(|e| Error::internal(format!("public key {}: {e}", m.kid)))?;
            by_kid.insert(m.kid.clone(), key);
            public.push(PublicKey {
                kid: m.kid.clone(),
                alg: ALGORITHM,
                x: m.public_key.clone(),
            });
        }
        Ok(Self { by_kid, public })
    }
}

async fn active_keys(db: &Db) -> Result<Vec<signing_key::Model>, Error> {
    Ok(signing_key::Entity::find()
        .filter(signing_key::Column::RetiredAt.is_null())
        .filter(signing_key::Column::Algorithm.eq(ALGORITHM))
        .all(db)
        .await?)
}

async fn insert_new_key(db: &Db) -> Result<(), Error> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| Error::internal(format!("no randomness: {e}")))?;
    let key = SigningKey::from_bytes(&seed);
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| Error::internal(format!("encoding a key: {e}")))?;
    let x = URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes());
    signing_key::ActiveModel {
        kid: Set(thumbprint(&x)),
        algorithm: Set(ALGORITHM.to_owned()),
        private_key: Set(pem.to_string()),
        public_key: Set(x),
        created_at: Set(OffsetDateTime::now_utc()),
        retired_at: Set(None),
    }
    .insert(db)
    .await?;
    tracing::info!("created a new signing key");
    Ok(())
}

/// RFC 7638 JWK thumbprint of an Ed25519 public key: a stable, unique `kid`.
fn thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}
