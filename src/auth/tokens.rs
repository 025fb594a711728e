//! Access tokens: EdDSA-signed JWTs with a `kid`, verified with the algorithm pinned.
//! The keys live in the database ([`super::keys`]), so every instance on one
//! database signs and verifies with the same keys; each instance re-reads them
//! every second ([`TokenKeys::refresh`]), so a rotation or retirement reaches it
//! within about a second.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant, SystemTime},
};

use ed25519_dalek::{
    SigningKey,
    pkcs8::{DecodePrivateKey, EncodePrivateKey},
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::Error;
use super::{
    AuthError, SessionId, UserId,
    assurance::Assurance,
    cache::{Cache, TailHash},
    keys::{ALGORITHM, ActiveKey, KeyStore},
};

/// The audience every doorman access token is minted for.
pub const AUDIENCE: &str = "doorman";

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
    /// The session's assurance level when the token was minted (`aal1`, `aal2`).
    /// Informational: doorman decides from the session, which a step-up or a
    /// removed factor changes before the token expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aal: Option<String>,
    /// How the session's user authenticated, when the token was minted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    /// The session's last authentication when the token was minted (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_at: Option<i64>,
    /// The key that signed the token (its header's `kid`), set once verified.
    #[serde(skip)]
    pub kid: Option<Arc<str>>,
}

/// A freshly minted access token.
pub struct AccessToken {
    pub token: String,
    pub expires_in: u64,
}

/// Signs and verifies access tokens; serves the JWKS.
pub struct TokenKeys {
    store: KeyStore,
    issuer: String,
    ttl: Duration,
    /// `None` when no active key's private key can be decrypted here (every key
    /// this instance could sign with was retired while it lacked the
    /// key-encryption key): nothing is signed until it restarts with the file.
    signer: RwLock<Option<Signer>>,
    /// The newest key this instance could not decrypt and has said so about (once,
    /// not at every re-read).
    unopened: Mutex<Option<String>>,
    validation: Validation,
    verifying: RwLock<VerifyingKeys>,
    last_reload: Mutex<Option<Instant>>,
    /// Kids found retired, not yet taken (see [`TokenKeys::take_retired`]).
    retired: Mutex<Vec<Arc<str>>>,
    /// Tokens whose signature and claims were verified, by their exact text: a
    /// signature check costs tens of microseconds, a lookup far less. A forged token
    /// cannot hit, as it differs from every verified one.
    /// Shared, not cloned, on a hit: every authenticated request reads it.
    verified: Cache<String, Arc<AccessClaims>, TailHash>,
    /// A secret for other MACs of this deployment, derived from the signing key.
    derived_secret: [u8; 32],
}

/// The one clock-skew tolerance, in seconds: a token is still accepted this long
/// after its `exp`, and its `nbf` and `iat` may be this far in the future (another
/// instance's clock running ahead), never more. Instances sharing a database must
/// keep their clocks within it (NTP does).
const LEEWAY_SECS: i64 = 5;

/// The key that signs: the newest active one.
struct Signer {
    kid: String,
    encoding: EncodingKey,
}

impl Signer {
    fn new(key: &ActiveKey) -> Result<Self, Error> {
        Ok(Self {
            kid: key.kid.clone(),
            encoding: EncodingKey::from_ed_der(&private_der(key)?),
        })
    }
}

fn private_der(key: &ActiveKey) -> Result<Vec<u8>, Error> {
    let pem = key
        .private_pem
        .as_ref()
        .map_err(|e| Error::internal(e.to_string()))?;
    SigningKey::from_pkcs8_pem(pem)
        .and_then(|k| k.to_pkcs8_der())
        .map(|der| der.as_bytes().to_vec())
        .map_err(|e| Error::caused(format!("signing key {}", key.kid), e))
}

struct VerifyingKeys {
    by_kid: HashMap<String, DecodingKey>,
    public: Vec<PublicKey>,
}

/// A public verification key, as the JWKS shows it.
#[derive(Debug, Clone)]
pub struct PublicKey {
    /// The key id, as the `kid` of the tokens it verifies.
    pub kid: String,
    /// The JWS algorithm (`EdDSA`).
    pub alg: &'static str,
    /// The raw Ed25519 public key, base64url without padding (the JWK `x`).
    pub x: String,
}

impl TokenKeys {
    /// Loads the active signing keys (encrypting plain ones when a key-encryption
    /// key is set), creating the first one on an empty database.
    pub async fn load_or_create(
        store: KeyStore,
        issuer: String,
        ttl: Duration,
    ) -> Result<Self, Error> {
        store.seal_plain_keys().await?;
        // A start needs every active key decrypted (the newest signs, the oldest
        // derives the secret): without the key-encryption key it stops, saying so.
        let mut keys = store.active_opened().await?;
        if keys.is_empty() {
            // Another instance starting at the same time may create it first.
            store.create_first().await?;
            keys = store.active_opened().await?;
        }
        // Newest first: the first signs.
        let newest = keys
            .first()
            .ok_or_else(|| Error::internal("no signing key"))?;
        let signer = Signer::new(newest)?;
        // Every instance derives the same secret from the oldest active key without
        // another table; a label keeps it apart from any other use. Rotating keeps
        // it; retiring that key changes it on instances started afterwards.
        let oldest = keys
            .last()
            .ok_or_else(|| Error::internal("no signing key"))?;
        let mut derive = Sha256::new();
        derive.update(b"doorman derived secret v1\0");
        derive.update(private_der(oldest)?);
        let derived_secret: [u8; 32] = derive.finalize().into();

        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&issuer]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS as u64;
        // Not required, but a token that is not valid yet is refused (RFC 7519 §4.1.5).
        validation.validate_nbf = true;

        Ok(Self {
            signer: RwLock::new(Some(signer)),
            unopened: Mutex::new(None),
            validation,
            verifying: RwLock::new(VerifyingKeys::from_keys(&keys)?),
            last_reload: Mutex::new(None),
            retired: Mutex::new(Vec::new()),
            verified: Cache::new(None, 100_000),
            derived_secret,
            store,
            issuer,
            ttl,
        })
    }

    /// Re-reads the active keys: the newest this instance can decrypt signs from now
    /// on, every active one verifies, a retired one stops
    /// verifying at once (verified tokens are forgotten, so none is still accepted
    /// from the cache). Keeps the current keys if the database cannot be read.
    /// The kids it finds retired wait for [`Self::take_retired`].
    pub async fn refresh(&self) -> Result<(), Error> {
        let keys = self.store.active().await?;
        if keys.is_empty() {
            return Err(Error::internal("every signing key is retired"));
        }
        let verifying = VerifyingKeys::from_keys(&keys)?;
        let retired: Vec<Arc<str>> = {
            let current = self.verifying.read().unwrap_or_else(|e| e.into_inner());
            current
                .by_kid
                .keys()
                .filter(|kid| !verifying.by_kid.contains_key(*kid))
                .map(|kid| Arc::from(kid.as_str()))
                .collect()
        };
        *self.verifying.write().unwrap_or_else(|e| e.into_inner()) = verifying;
        if !retired.is_empty() {
            self.verified.clear();
            tracing::info!(kids = ?retired, "a signing key was retired; its tokens are refused from now on");
            self.retired
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(retired);
        }
        self.choose_signer(&keys)
    }

    /// Whether this instance holds a key it can sign with (see `signer`).
    pub fn can_sign(&self) -> bool {
        self.signer
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Signs with the newest active key this instance can decrypt, or already holds
    /// (an instance without the key-encryption key keeps the key it started with
    /// after another instance sealed it). A newer one it cannot decrypt is skipped,
    /// said once: every instance still verifies it, and the key signing here stays
    /// verified everywhere until it is retired.
    fn choose_signer(&self, keys: &[ActiveKey]) -> Result<(), Error> {
        let Some(newest) = keys.first() else {
            return Ok(());
        };
        let current = self
            .signer
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|s| s.kid.clone());
        let usable = keys
            .iter()
            .find(|k| k.private_pem.is_ok() || current.as_deref() == Some(k.kid.as_str()));
        {
            let mut unopened = self.unopened.lock().unwrap_or_else(|e| e.into_inner());
            match &newest.private_pem {
                // Sealed since this instance started, but held: nothing to say.
                _ if current.as_deref() == Some(newest.kid.as_str()) => *unopened = None,
                Ok(_) => *unopened = None,
                Err(e) if unopened.as_deref() != Some(newest.kid.as_str()) => {
                    *unopened = Some(newest.kid.clone());
                    match usable {
                        Some(k) => tracing::warn!(
                            kid = %newest.kid,
                            signing_kid = %k.kid,
                            "the newest signing key cannot be decrypted here ({e}); signing \
                             with the newest one that can, which every instance still verifies"
                        ),
                        None => tracing::error!(
                            kid = %newest.kid,
                            "no active signing key can be decrypted here ({e}): logins and \
                             refreshes fail on this instance until it restarts with the file"
                        ),
                    }
                }
                Err(_) => {}
            }
        }
        if current.as_deref() != usable.map(|k| k.kid.as_str()) {
            // Another key than the one held: one this instance can decrypt.
            let signer = usable.map(Signer::new).transpose()?;
            if let Some(signer) = &signer {
                tracing::info!(kid = %signer.kid, "signing with a new key");
            }
            *self.signer.write().unwrap_or_else(|e| e.into_inner()) = signer;
        }
        Ok(())
    }

    /// The kids retired since the last call (whichever reading found them: the
    /// periodic one, or one made for an unknown kid).
    pub fn take_retired(&self) -> Vec<Arc<str>> {
        std::mem::take(&mut *self.retired.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A 32-byte secret shared by every instance on this database, for MACs that
    /// must not be forgeable (device cookies). It changes when the signing key does.
    pub fn derived_secret(&self) -> [u8; 32] {
        self.derived_secret
    }

    /// Mints an access token for a session.
    pub fn issue(
        &self,
        user: UserId,
        session: SessionId,
        assurance: &Assurance,
    ) -> Result<AccessToken, Error> {
        let now = unix_now();
        let claims = AccessClaims {
            kid: None,
            iss: self.issuer.clone(),
            aud: AUDIENCE.to_owned(),
            sub: user.0,
            sid: session.0,
            iat: now,
            exp: now + self.ttl.as_secs() as i64,
            jti: Uuid::new_v4(),
            aal: Some(assurance.aal.as_str().to_owned()),
            amr: Some(
                assurance
                    .amr
                    .names()
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
            ),
            auth_at: Some(assurance.auth_at.unix_timestamp()),
        };
        let signer = self.signer.read().unwrap_or_else(|e| e.into_inner());
        let signer = signer.as_ref().ok_or_else(|| {
            Error::internal(
                "no active signing key can be decrypted on this instance: set \
                 DOORMAN_KEY_ENCRYPTION_KEY_FILE and restart it",
            )
        })?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(signer.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &signer.encoding)
            .map_err(|e| Error::caused("signing an access token", e))?;
        Ok(AccessToken {
            token,
            expires_in: self.ttl.as_secs(),
        })
    }

    /// Verifies the header (see [`header_is_ours`]), signature, algorithm, `kid`,
    /// `iss`, `aud`, `exp`, `nbf` and `iat` (neither in the future beyond the
    /// leeway). Says nothing of the session; the resolver checks that.
    pub async fn verify(&self, token: &str) -> Result<Arc<AccessClaims>, AuthError> {
        let cached = self.verified.get(token);
        // Literal labels make static keys: no allocation per request.
        if cached.is_some() {
            metrics::counter!("doorman_cache_lookups_total", "cache" => "verified_tokens", "result" => "hit")
                .increment(1);
        } else {
            metrics::counter!("doorman_cache_lookups_total", "cache" => "verified_tokens", "result" => "miss")
                .increment(1);
        }
        if let Some(claims) = cached {
            return if unix_now() <= claims.exp + LEEWAY_SECS {
                Ok(claims)
            } else {
                Err(AuthError::InvalidToken)
            };
        }
        // Boxed: the slow path's future (which may read keys from the database) is
        // large, and inlining it would make every caller's future as large, to be
        // copied on every request even when the cache answers.
        let claims = Arc::new(Box::pin(self.verify_signature(token)).await?);
        self.verified.insert(token.to_owned(), claims.clone());
        Ok(claims)
    }

    async fn verify_signature(&self, token: &str) -> Result<AccessClaims, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::InvalidToken)?;
        if !header_is_ours(&header) {
            return Err(AuthError::InvalidToken);
        }
        let Some(kid) = header.kid else {
            return Err(AuthError::InvalidToken);
        };
        let mut verified = self.verify_with(&kid, token);
        // A kid we do not know may belong to a key another instance just created.
        if verified.is_none() && self.reload_keys().await {
            verified = self.verify_with(&kid, token);
        }
        let claims = verified.ok_or(AuthError::InvalidToken)??;
        // jsonwebtoken checks `exp` and `nbf`, not `iat`: a token issued in the
        // future is as wrong as one not valid yet (RFC 8725 §3.10).
        if claims.iat > unix_now().saturating_add(LEEWAY_SECS) {
            return Err(AuthError::InvalidToken);
        }
        Ok(claims)
    }

    fn verify_with(&self, kid: &str, token: &str) -> Option<Result<AccessClaims, AuthError>> {
        let keys = self.verifying.read().unwrap_or_else(|e| e.into_inner());
        let key = keys.by_kid.get(kid)?;
        Some(
            jsonwebtoken::decode::<AccessClaims>(token, key, &self.validation)
                .map(|data| AccessClaims {
                    kid: Some(Arc::from(kid)),
                    ..data.claims
                })
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
        self.refresh().await.is_ok()
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

/// Whether a JWS header is one doorman writes: `alg` EdDSA, `typ` JWT, a `kid`,
/// and nothing else. RFC 7515 §4.1.11 requires refusing a `crit` that names an
/// extension the verifier does not understand (doorman understands none); a `typ`
/// other than JWT (`JWE`, …) or any `cty` (a nested token, RFC 7519 §5.2) says the
/// signed content is not our claims set (RFC 8725 §3.11); key-locating and JWE
/// fields (`jku`, `jwk`, `x5*`, `enc`, `zip`) and unknown ones have no business in
/// an access token. Refusing them costs nothing: only doorman's key signs.
fn header_is_ours(header: &Header) -> bool {
    let typ_is_jwt = header.typ.as_deref().is_some_and(|typ| {
        // Media types compare case-insensitively; "application/" may be omitted.
        let typ = typ
            .get(..12)
            .filter(|p| p.eq_ignore_ascii_case("application/"))
            .map_or(typ, |_| &typ[12..]);
        typ.eq_ignore_ascii_case("JWT")
    });
    header.alg == Algorithm::EdDSA
        && typ_is_jwt
        && header.kid.is_some()
        && header.cty.is_none()
        && header.crit.is_none()
        && header.jku.is_none()
        && header.jwk.is_none()
        && header.x5u.is_none()
        && header.x5c.is_none()
        && header.x5t.is_none()
        && header.x5t_s256.is_none()
        && header.enc.is_none()
        && header.zip.is_none()
        && header.url.is_none()
        && header.nonce.is_none()
        && header.extras.inner().is_empty()
}

impl VerifyingKeys {
    fn from_keys(keys: &[ActiveKey]) -> Result<Self, Error> {
        let mut by_kid = HashMap::new();
        let mut public = Vec::new();
        for k in keys {
            let key = DecodingKey::from_ed_components(&k.public_x)
                .map_err(|e| Error::caused(format!("public key {}", k.kid), e))?;
            by_kid.insert(k.kid.clone(), key);
            public.push(PublicKey {
                kid: k.kid.clone(),
                alg: ALGORITHM,
                x: k.public_x.clone(),
            });
        }
        Ok(Self { by_kid, public })
    }
}

/// Seconds since the Unix epoch, as `OffsetDateTime::now_utc().unix_timestamp()`
/// gives them but without the round trip through a calendar date (about 200
/// instructions, on every request a cached token answers).
fn unix_now() -> i64 {
    match SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    }
}
