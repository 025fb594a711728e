//! Passkeys (WebAuthn, through webauthn-rs): registering several per account,
//! naming and removing them, and signing in with one, usernameless (discoverable
//! credentials), or re-authenticating a session with one.
//!
//! A ceremony's state waits in `auth_challenges` under its WebAuthn challenge,
//! which the browser's answer carries back in its client data: the answer finds
//! its own state, on any instance, once (taking it deletes it), within five
//! minutes, and a registration only for the session that started it. webauthn-rs
//! checks the origin (the public URL's), the RP ID (its host), the challenge, user
//! verification and the signature; a signature counter that does not move
//! forward is refused, here and in the row's conditional update, so two sign-ins
//! racing with one counter value cannot both pass.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use entity::passkey;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set,
    SqlErr, sea_query::Expr,
};
use time::OffsetDateTime;
use uuid::Uuid;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Webauthn, WebauthnBuilder, WebauthnError,
};

use super::{
    Auth, AuthError, ClientInfo, Error, FactorError, Identity, Issued, User, UserId, accounts,
    activity,
    assurance::{Aal, Amr, Method},
    challenges::{self, Purpose},
    second_factors,
};

/// Passkeys one account may hold.
pub const MAX_PER_USER: u64 = 20;

/// The relying party: `None` when the public URL's host is an IP address, which
/// WebAuthn does not allow as an RP ID (browsers refuse it): passkeys are then
/// unavailable (`passkeys_unavailable`), everything else works.
pub(super) fn relying_party(public_url: &str) -> Option<Webauthn> {
    let origin = Url::parse(public_url).ok()?;
    let Some(host) = origin.domain().map(str::to_owned) else {
        tracing::info!(
            "passkeys are off: the public URL's host is an IP address, which WebAuthn does not allow; set DOORMAN_PUBLIC_URL to a domain name (http://localhost:PORT works)"
        );
        return None;
    };
    match WebauthnBuilder::new(&host, &origin).and_then(|b| b.rp_name(&host).build()) {
        Ok(webauthn) => Some(webauthn),
        Err(e) => {
            tracing::warn!(error = %e, "passkeys unavailable: the public URL is no WebAuthn origin");
            None
        }
    }
}

/// A passkey as its owner sees it.
#[derive(Debug, Clone)]
pub struct PasskeyInfo {
    /// Its id (for `DELETE /api/me/passkeys/{id}`).
    pub id: Uuid,
    /// The name its owner gave it.
    pub name: String,
    /// When it was registered.
    pub created_at: OffsetDateTime,
    /// When it last signed in or re-authenticated.
    pub last_used_at: Option<OffsetDateTime>,
}

impl From<passkey::Model> for PasskeyInfo {
    fn from(m: passkey::Model) -> Self {
        Self {
            id: m.id,
            name: m.name,
            created_at: m.created_at,
            last_used_at: m.last_used_at,
        }
    }
}

/// The WebAuthn challenge a browser's answer was made for, from its client data
/// (`clientDataJSON`'s `challenge`, base64url as the options carried it).
fn challenge_of(client_data_json: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct ClientData {
        challenge: String,
    }
    let data: ClientData = serde_json::from_slice(client_data_json).ok()?;
    (!data.challenge.is_empty() && data.challenge.len() <= 128).then_some(data.challenge)
}

/// What a browser's answer that does not verify is told; the reason is logged.
fn refused(why: &str, e: Option<&WebauthnError>) -> Error {
    match e {
        Some(WebauthnError::CredentialPossibleCompromise) => tracing::warn!(
            security_event = "passkey_counter_regression",
            "a passkey's signature counter went back: refused (a cloned authenticator?)"
        ),
        Some(e) => tracing::info!(error = %e, "passkey refused: {why}"),
        None => tracing::info!("passkey refused: {why}"),
    }
    FactorError::InvalidPasskey.into()
}

/// A passkey's name: 1 to 64 printable characters, trimmed; `None` for the default.
fn name_of(raw: Option<String>) -> Result<String, Error> {
    let Some(raw) = raw else {
        return Ok("passkey".to_owned());
    };
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(Error::Invalid(
            "name: 1 to 64 characters, no control characters".to_owned(),
        ));
    }
    Ok(name.to_owned())
}

impl Auth {
    /// Whether passkeys work here (the public URL's host is a domain name).
    pub fn passkeys_available(&self) -> bool {
        self.webauthn.is_some()
    }

    fn webauthn(&self) -> Result<&Webauthn, Error> {
        self.webauthn
            .as_ref()
            .ok_or_else(|| FactorError::PasskeysUnavailable.into())
    }

    /// Starts registering a passkey for the caller: the creation options for
    /// `navigator.credentials.create()` (`{"publicKey": …}`, base64url binaries),
    /// asking for a discoverable credential with user verification, and excluding
    /// the caller's passkeys. The answer goes to [`Auth::finish_passkey_registration`]
    /// from the same session within five minutes. A factor change
    /// ([`Auth::require_recent`]), here and at the finish.
    pub async fn start_passkey_registration(
        &self,
        who: &Identity,
    ) -> Result<serde_json::Value, Error> {
        let webauthn = self.webauthn()?;
        self.require_recent(who).await?;
        let user = self
            .user(who.user_id)
            .await?
            .ok_or(AuthError::SessionRevoked)?;
        let existing = passkey::Entity::find()
            .filter(passkey::Column::UserId.eq(who.user_id.0))
            .all(&self.db)
            .await?;
        if existing.len() as u64 >= MAX_PER_USER {
            return Err(FactorError::TooManyPasskeys.into());
        }
        let exclude = existing
            .iter()
            .filter_map(|row| URL_SAFE_NO_PAD.decode(&row.cred_id).ok())
            .collect();
        let (options, state) = webauthn
            .start_passkey_registration(
                who.user_id.0,
                &user.email,
                &user.display_name,
                Some(exclude),
            )
            .map_err(|e| Error::caused("starting a passkey registration", e))?;
        let mut options = serde_json::to_value(&options)
            .map_err(|e| Error::caused("writing passkey creation options", e))?;
        // webauthn-rs asks for a non-discoverable credential; a usernameless sign-in
        // needs the authenticator to keep it (it checks nothing of this on finish).
        if let Some(selection) = options
            .pointer_mut("/publicKey/authenticatorSelection")
            .and_then(|s| s.as_object_mut())
        {
            selection.insert("residentKey".into(), "required".into());
            selection.insert("requireResidentKey".into(), true.into());
        }
        let challenge = options
            .pointer("/publicKey/challenge")
            .and_then(|c| c.as_str())
            .ok_or_else(|| Error::internal("passkey creation options without a challenge"))?
            .to_owned();
        let state = serde_json::to_string(&state)
            .map_err(|e| Error::caused("keeping a passkey registration", e))?;
        challenges::store(
            &self.db,
            Purpose::PasskeyRegister,
            &challenge,
            Some(who.user_id),
            Some(who.session_id),
            Some(state),
        )
        .await?;
        Ok(options)
    }

    /// Finishes a registration with the browser's answer (the JSON of the
    /// `PublicKeyCredential`, base64url binaries): the passkey is stored under
    /// `name`. Anything that does not verify is `invalid_passkey`.
    pub async fn finish_passkey_registration(
        &self,
        who: &Identity,
        credential: serde_json::Value,
        name: Option<String>,
    ) -> Result<PasskeyInfo, Error> {
        let webauthn = self.webauthn()?;
        self.require_recent(who).await?;
        let name = name_of(name)?;
        let credential: RegisterPublicKeyCredential = serde_json::from_value(credential)
            .map_err(|_| refused("not a registration answer", None))?;
        let challenge = challenge_of(&credential.response.client_data_json)
            .ok_or_else(|| refused("no challenge in the client data", None))?;
        let pending = challenges::take_pending(&self.db, Purpose::PasskeyRegister, &challenge)
            .await?
            .ok_or_else(|| refused("unknown, used or expired challenge", None))?;
        if pending.session != Some(who.session_id) || pending.user != Some(who.user_id) {
            return Err(refused("a challenge of another session", None));
        }
        let state: PasskeyRegistration = pending
            .state
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .ok_or_else(|| Error::internal("a passkey registration's state did not read back"))?;
        let passkey = webauthn
            .finish_passkey_registration(&credential, &state)
            .map_err(|e| refused("registration did not verify", Some(&e)))?;
        let cred_id = URL_SAFE_NO_PAD.encode(passkey.cred_id());
        let stored =
            serde_json::to_string(&passkey).map_err(|e| Error::caused("storing a passkey", e))?;
        let at_aal2 = who.assurance.aal == Aal::Aal2;
        let user = who.user_id;
        // The checks again, in the transaction that adds it, with the account held:
        // ceremonies started below the cap, or before another session added a
        // factor, finish one after another and see each other's result.
        let added = self
            .db
            .transaction(async |txn| {
                second_factors::lock_account(txn, user).await?;
                if !at_aal2 && second_factors::has_factor_in(txn, user).await? {
                    return Ok(Err(FactorError::SecondFactorRequired));
                }
                let held = passkey::Entity::find()
                    .filter(passkey::Column::UserId.eq(user.0))
                    .count(txn)
                    .await?;
                if held >= MAX_PER_USER {
                    return Ok(Err(FactorError::TooManyPasskeys));
                }
                passkey::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    user_id: Set(user.0),
                    name: Set(name),
                    cred_id: Set(cred_id),
                    credential: Set(stored),
                    counter: Set(0),
                    created_at: Set(accounts::now()),
                    last_used_at: Set(None),
                }
                .insert(txn)
                .await
                .map(Ok)
            })
            .await;
        let row = match added {
            Ok(Ok(row)) => row,
            Ok(Err(refusal)) => return Err(refusal.into()),
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                return Err(refused("this credential is registered already", None));
            }
            Err(e) => return Err(e.into()),
        };
        tracing::info!(security_event = "passkey_added", user_id = %who.user_id, "passkey registered");
        activity::record(
            &self.db,
            who.user_id,
            activity::Kind::FactorAdded,
            Some(who.session_id),
            None,
        )
        .await;
        self.sessions.factor_added(who.user_id, Method::Webauthn);
        Ok(row.into())
    }

    /// The caller's passkeys, oldest first.
    pub async fn passkeys(&self, user: UserId) -> Result<Vec<PasskeyInfo>, Error> {
        Ok(passkey::Entity::find()
            .filter(passkey::Column::UserId.eq(user.0))
            .order_by_asc(passkey::Column::CreatedAt)
            .all(&self.db)
            .await?
            .into_iter()
            .map(PasskeyInfo::from)
            .collect())
    }

    /// How many passkeys the user has.
    pub(super) async fn passkey_count(&self, user: UserId) -> Result<u64, Error> {
        Ok(passkey::Entity::find()
            .filter(passkey::Column::UserId.eq(user.0))
            .count(&self.db)
            .await?)
    }

    /// Removes one of the caller's passkeys (`false`: not theirs, or gone). Every
    /// session of theirs that a passkey signed in or re-authenticated drops
    /// `webauthn` from its `amr`, and to aal1 unless a code holds it there.
    pub async fn remove_passkey(&self, who: &Identity, id: Uuid) -> Result<bool, Error> {
        self.require_recent(who).await?;
        let deleted = passkey::Entity::delete_many()
            .filter(passkey::Column::Id.eq(id))
            .filter(passkey::Column::UserId.eq(who.user_id.0))
            .exec(&self.db)
            .await?;
        if deleted.rows_affected == 0 {
            return Ok(false);
        }
        tracing::info!(security_event = "passkey_removed", user_id = %who.user_id, "passkey removed");
        self.factor_gone(who, &[Method::Webauthn]).await?;
        Ok(true)
    }

    /// The request options for `navigator.credentials.get()` (`{"publicKey": …}`):
    /// discoverable, user verification required. The answer signs in
    /// ([`Auth::passkey_login`]) or re-authenticates a session
    /// ([`Auth::reauthenticate`] with a credential), within five minutes.
    pub async fn start_passkey_assertion(&self) -> Result<serde_json::Value, Error> {
        let webauthn = self.webauthn()?;
        let (options, state) = webauthn
            .start_discoverable_authentication()
            .map_err(|e| Error::caused("starting a passkey assertion", e))?;
        let mut options = serde_json::to_value(&options)
            .map_err(|e| Error::caused("writing passkey request options", e))?;
        // webauthn-rs marks it for autofill (conditional mediation); a page's
        // "Sign in with a passkey" button asks in the modal way.
        if let Some(o) = options.as_object_mut() {
            o.remove("mediation");
        }
        let challenge = options
            .pointer("/publicKey/challenge")
            .and_then(|c| c.as_str())
            .ok_or_else(|| Error::internal("passkey request options without a challenge"))?
            .to_owned();
        let state = serde_json::to_string(&state)
            .map_err(|e| Error::caused("keeping a passkey assertion", e))?;
        challenges::store(
            &self.db,
            Purpose::PasskeyAssertion,
            &challenge,
            None,
            None,
            Some(state),
        )
        .await?;
        Ok(options)
    }

    /// Checks a browser's assertion against the challenge it answers and the
    /// passkey it names: the passkey's user and row, its counter raised.
    async fn verify_assertion(
        &self,
        credential: serde_json::Value,
    ) -> Result<(UserId, passkey::Model), Error> {
        let webauthn = self.webauthn()?;
        let credential: PublicKeyCredential =
            serde_json::from_value(credential).map_err(|_| refused("not an assertion", None))?;
        let challenge = challenge_of(&credential.response.client_data_json)
            .ok_or_else(|| refused("no challenge in the client data", None))?;
        let pending = challenges::take_pending(&self.db, Purpose::PasskeyAssertion, &challenge)
            .await?
            .ok_or_else(|| refused("unknown, used or expired challenge", None))?;
        let state: DiscoverableAuthentication = pending
            .state
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .ok_or_else(|| Error::internal("a passkey assertion's state did not read back"))?;
        let (user, cred_id) = webauthn
            .identify_discoverable_authentication(&credential)
            .map_err(|e| refused("no user handle", Some(&e)))?;
        let row = passkey::Entity::find()
            .filter(passkey::Column::CredId.eq(URL_SAFE_NO_PAD.encode(cred_id)))
            .one(&self.db)
            .await?
            .ok_or_else(|| refused("an unknown credential", None))?;
        // webauthn-rs does not tie the user handle to the credential: we do.
        if row.user_id != user {
            return Err(refused("a credential of another user", None));
        }
        let mut stored: Passkey = serde_json::from_str(&row.credential)
            .map_err(|e| Error::caused("a stored passkey did not read back", e))?;
        let result = webauthn
            .finish_discoverable_authentication_v2(&credential, state, &stored)
            .map_err(|e| refused("assertion did not verify", Some(&e)))?;
        let counter = i64::from(result.counter());
        stored.update_credential(&result);
        let json =
            serde_json::to_string(&stored).map_err(|e| Error::caused("storing a passkey", e))?;
        let mut update = passkey::Entity::update_many()
            .col_expr(passkey::Column::Credential, Expr::value(json))
            .col_expr(passkey::Column::LastUsedAt, Expr::value(accounts::now()))
            .filter(passkey::Column::Id.eq(row.id));
        // A counter in use only moves forward: of two assertions racing with the
        // same value, one updates the row and the other is refused.
        if counter > 0 {
            update = update
                .col_expr(passkey::Column::Counter, Expr::value(counter))
                .filter(passkey::Column::Counter.lt(counter));
        }
        if update.exec(&self.db).await?.rows_affected != 1 {
            tracing::warn!(
                security_event = "passkey_counter_regression",
                user_id = %user,
                "two assertions with one passkey counter value: the later refused"
            );
            return Err(FactorError::InvalidPasskey.into());
        }
        Ok((UserId(user), row))
    }

    /// Signs in with a passkey: a session at aal2 (`webauthn`), for the user the
    /// passkey belongs to. The same checks as a password login follow (a blocked
    /// account, an unverified address when required).
    pub async fn passkey_login(
        &self,
        credential: serde_json::Value,
        client: ClientInfo,
    ) -> Result<(User, Issued), Error> {
        let (user_id, _) = self.verify_assertion(credential).await?;
        let user = accounts::find(&self.db, user_id.0)
            .await?
            .ok_or(FactorError::InvalidPasskey)?;
        if self.require_verified_email && user.email_verified_at.is_none() {
            return Err(Error::EmailUnverified);
        }
        if user.blocked_at.is_some() {
            tracing::warn!(
                security_event = "login_blocked",
                user_id = %user.id,
                "passkey sign-in to a blocked account refused"
            );
            return Err(AuthError::AccountBlocked.into());
        }
        self.open_session(&user, Amr::of(Method::Webauthn), client)
            .await
    }

    /// Checks an assertion made with one of the caller's own passkeys (for a
    /// re-authentication, which [`Auth::reauthenticate`] then records).
    pub(super) async fn check_own_passkey(
        &self,
        who: &Identity,
        credential: serde_json::Value,
    ) -> Result<(), Error> {
        let (user, _) = self.verify_assertion(credential).await?;
        if user != who.user_id {
            return Err(refused("a passkey of another user", None));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relying_party_needs_a_domain_name() {
        assert!(relying_party("http://127.0.0.1:8080").is_none());
        assert!(relying_party("http://[::1]:8080").is_none());
        assert!(relying_party("http://localhost:8080").is_some());
        assert!(relying_party("https://auth.example.org").is_some());
    }

    #[test]
    fn the_challenge_is_read_from_the_client_data() {
        assert_eq!(
            challenge_of(br#"{"type":"webauthn.get","challenge":"abc_-","origin":"x"}"#),
            Some("abc_-".to_owned())
        );
        assert_eq!(challenge_of(b"not json"), None);
        assert_eq!(challenge_of(br#"{"challenge":""}"#), None);
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(name_of(None).unwrap(), "passkey");
        assert_eq!(name_of(Some("  laptop ".into())).unwrap(), "laptop");
        assert!(name_of(Some("".into())).is_err());
        assert!(name_of(Some("a\u{7}".into())).is_err());
        assert!(name_of(Some("x".repeat(65))).is_err());
    }
}
