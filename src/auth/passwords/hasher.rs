//! Argon2id over memory the hashing thread holds while it has work: one buffer of
//! `m` blocks in pages of its own, mapped for the first job after an idle spell,
//! reused for every hash and verification that follows, and unmapped when the
//! thread goes idle again ([`Hasher::release`]).
//!
//! Why not `PasswordHasher::hash_password`: it allocates and frees 19 MiB per call,
//! and glibc, after the first such free, raises its mmap threshold and serves the
//! later 19 MiB blocks from heaps it never gives back, so a hundred sign-ups took
//! the server from 20 MiB to over 300 MiB. The PHC strings written and read here
//! are the ones `hash_password` writes, so hashes from either verify with the other.

// argon2's errors (built without its `std` feature) implement no `std::error::Error`:
// their text is all there is to keep, so they are formatted into the message.
use argon2::{
    Algorithm, Argon2, Params, PasswordHash, Version,
    password_hash::{Output, ParamsString, SaltString},
};
use subtle::ConstantTimeEq as _;

use super::pages::Pages;
use crate::auth::Error;

/// Salt bytes per hash (the PHC recommendation, and what `SaltString::generate`
/// gives).
const SALT_LEN: usize = 16;

/// OWASP's Argon2id parameters: m = 19 MiB, t = 2, p = 1.
pub(super) fn params() -> Result<Params, Error> {
    Params::new(19 * 1024, 2, 1, None)
        .map_err(|e| Error::internal(format!("Argon2 parameters: {e}")))
}

/// One hashing thread's Argon2id: the parameters new hashes get and the memory
/// every hash and verification of this thread runs in.
pub(super) struct Hasher {
    argon2: Argon2<'static>,
    /// `m` blocks while the thread has work; `None` while it is idle.
    memory: Option<Pages>,
}

impl Hasher {
    pub(super) fn new(params: Params) -> Self {
        Self {
            argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
            memory: None,
        }
    }

    /// Hands the memory back to the operating system (the next job maps it again).
    pub(super) fn release(&mut self) {
        self.memory = None;
    }

    /// Whether the thread holds its memory.
    #[cfg(test)]
    pub(super) fn holds_memory(&self) -> bool {
        self.memory.is_some()
    }

    /// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`) for
    /// `password` with a fresh random salt.
    pub(super) fn hash(&mut self, password: &[u8]) -> Result<String, Error> {
        let mut salt = [0u8; SALT_LEN];
        getrandom::fill(&mut salt).map_err(|e| Error::caused("no randomness", e))?;
        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
        let argon2 = &self.argon2;
        compute(&mut self.memory, argon2, argon2, password, &salt, &mut out)
            .map_err(|e| Error::internal(format!("hashing: {e}")))?;
        let salt = SaltString::encode_b64(&salt)
            .map_err(|e| Error::internal(format!("a password hash: {e}")))?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(argon2.params())
                .map_err(|e| Error::internal(format!("a password hash: {e}")))?,
            salt: Some(salt.as_salt()),
            hash: Some(
                Output::new(&out).map_err(|e| Error::internal(format!("a password hash: {e}")))?,
            ),
        };
        Ok(phc.to_string())
    }

    /// Whether `password` matches the PHC string `phc`, recomputed with the
    /// algorithm, version, parameters and salt `phc` names. A string that does not
    /// parse matches nothing.
    pub(super) fn verify(&mut self, password: &[u8], phc: &str) -> bool {
        let Some((argon2, salt, expected)) = parse(phc) else {
            return false;
        };
        let mut salt_buf = [0u8; 64];
        let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
            return false;
        };
        let mut out_buf = [0u8; Output::MAX_LENGTH];
        let out = &mut out_buf[..expected.len()];
        if compute(&mut self.memory, &self.argon2, &argon2, password, salt, out).is_err() {
            return false;
        }
        out.ct_eq(expected.as_bytes()).into()
    }
}

/// Runs `argon2` in `memory`, which is mapped for `own` (this thread's parameters)
/// when the thread holds none and kept until [`Hasher::release`].
fn compute(
    memory: &mut Option<Pages>,
    own: &Argon2<'_>,
    argon2: &Argon2<'_>,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> argon2::Result<()> {
    if memory.is_none() {
        *memory = Pages::new(own.params().block_count());
    }
    match memory
        .as_mut()
        .and_then(|m| m.blocks().get_mut(..argon2.params().block_count()))
    {
        // The first pass writes every block before reading it, so what an earlier
        // job left in the memory changes nothing.
        Some(memory) => argon2.hash_password_into_with_memory(password, salt, out, memory),
        // A stored hash made with more memory than ours (imported, or from before a
        // parameter change): it must still verify; this one allocation is freed
        // again. The same when the system refused the mapping.
        None => argon2.hash_password_into(password, salt, out),
    }
}

/// The Argon2 instance, salt and expected output a PHC string names.
fn parse(phc: &str) -> Option<(Argon2<'static>, argon2::password_hash::Salt<'_>, Output)> {
    let hash = PasswordHash::new(phc).ok()?;
    let algorithm = Algorithm::try_from(hash.algorithm).ok()?;
    let version = match hash.version {
        Some(v) => Version::try_from(v).ok()?,
        None => Version::default(),
    };
    let params = Params::try_from(&hash).ok()?;
    Some((
        Argon2::new(algorithm, version, params),
        hash.salt?,
        hash.hash?,
    ))
}

#[cfg(test)]
mod tests {
    use argon2::{PasswordHasher as _, PasswordVerifier as _};

    use super::*;

    const PASSWORD: &[u8] = b"correct horse battery";

    fn hasher() -> Hasher {
        Hasher::new(params().expect("valid parameters"))
    }

    /// The path every hash took before this module: `hash_password`.
    fn library_hash(password: &[u8]) -> String {
        let salt = SaltString::encode_b64(b"0123456789abcdef").expect("salt");
        Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            params().expect("valid parameters"),
        )
        .hash_password(password, &salt)
        .expect("hash")
        .to_string()
    }

    #[test]
    fn hashes_from_hash_password_verify_here() {
        let old = library_hash(PASSWORD);
        let mut hasher = hasher();
        assert!(hasher.verify(PASSWORD, &old));
        assert!(!hasher.verify(b"a wrong password", &old));
        // The memory is reused: verifying again, after other work, gives the same.
        hasher.hash(b"something else").expect("hash");
        assert!(hasher.verify(PASSWORD, &old));
    }

    #[test]
    fn hashes_made_here_verify_with_the_library_and_look_alike() {
        let mut hasher = hasher();
        let first = hasher.hash(PASSWORD).expect("hash");
        let second = hasher.hash(PASSWORD).expect("hash");
        assert_ne!(first, second, "a fresh salt per hash");
        assert!(
            first.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{first}"
        );
        assert_eq!(first.len(), library_hash(PASSWORD).len());
        let argon2 = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            params().expect("valid parameters"),
        );
        for phc in [&first, &second] {
            let parsed = PasswordHash::new(phc).expect("parses");
            assert!(argon2.verify_password(PASSWORD, &parsed).is_ok());
            assert!(
                argon2
                    .verify_password(b"a wrong password", &parsed)
                    .is_err()
            );
            assert!(hasher.verify(PASSWORD, phc));
            assert!(!hasher.verify(b"a wrong password", phc));
        }
    }

    #[test]
    fn a_hash_with_other_parameters_verifies_with_its_own() {
        let mut hasher = hasher();
        // Less memory than ours (a slice of ours), and more (a one-off buffer).
        for m in [8 * 1024, 24 * 1024] {
            let params = Params::new(m, 1, 1, None).expect("valid parameters");
            let salt = SaltString::encode_b64(b"0123456789abcdef").expect("salt");
            let phc = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
                .hash_password(PASSWORD, &salt)
                .expect("hash")
                .to_string();
            assert!(hasher.verify(PASSWORD, &phc), "m = {m}");
            assert!(!hasher.verify(b"a wrong password", &phc), "m = {m}");
        }
    }

    #[test]
    fn released_memory_is_mapped_again_for_the_next_job() {
        let mut hasher = hasher();
        assert!(!hasher.holds_memory(), "no memory before the first job");
        let phc = hasher.hash(PASSWORD).expect("hash");
        assert!(hasher.holds_memory());
        hasher.release();
        assert!(!hasher.holds_memory());
        assert!(hasher.verify(PASSWORD, &phc));
        assert!(hasher.holds_memory());
    }

    #[test]
    fn a_malformed_hash_matches_nothing() {
        let mut hasher = hasher();
        for phc in ["", "not a hash", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA"] {
            assert!(!hasher.verify(PASSWORD, phc), "{phc:?}");
        }
    }
}
