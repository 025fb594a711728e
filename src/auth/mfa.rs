//! Second factors and step-up on the auth core's facade: TOTP enrolment, the
//! second login step, re-authentication, and the check every sensitive operation
//! makes ([`Auth::require_recent`]). The factors' rows are `second_factors`, the
//! pending login step is a `challenges` row, and a session's assurance lives on
//! its row (`sessions`).

use serde::{Deserialize, Serialize};

use super::{
    Auth, AuthError, ClientInfo, Error, FactorError, Identity, Issued, User, UserId, accounts,
    activity,
    assurance::{Aal, Amr, Assurance, Method},
    challenges::{self, Purpose},
    email_tokens,
    events::FactorChange,
    second_factors, totp,
};

/// What a right password leads to.
pub enum LoginStep {
    /// A session: the account has no second factor.
    Done(User, Issued),
    /// The account has a second factor: the login finishes with
    /// [`Auth::complete_login`].
    SecondFactor(MfaChallenge),
}

/// The second step of a login: hand the token to the client once.
pub struct MfaChallenge {
    /// The token the second step presents (`mfa_token`).
    pub mfa_token: String,
    /// The factors that can finish it (`totp`; a recovery code always can).
    pub methods: Vec<&'static str>,
    /// Seconds the step stays open.
    pub expires_in: u64,
}

/// A second factor presented.
pub enum Proof {
    /// A TOTP code.
    Totp(String),
    /// A recovery code.
    RecoveryCode(String),
}

impl Proof {
    fn method(&self) -> Method {
        match self {
            Proof::Totp(_) => Method::Otp,
            Proof::RecoveryCode(_) => Method::RecoveryCode,
        }
    }
}

/// What a proof that held spent.
enum Spent {
    /// A TOTP time step.
    TotpStep,
    /// The recovery code with this row id.
    RecoveryCode(uuid::Uuid),
}

/// A login waiting for its second factor, as [`Auth::pending_login`] found it.
pub struct PendingLogin {
    /// The user whose password was right.
    pub user_id: UserId,
    /// Their address: the key of the login failure budget the second step spends.
    pub account: String,
    /// What the first step's caller asked to keep.
    pub carry: String,
    /// The token, for [`Auth::complete_login`].
    token: String,
    /// The password hash the first step checked, digested: a password change in
    /// between voids the step.
    password_binding: String,
}

/// What the challenge row keeps between the steps.
#[derive(Serialize, Deserialize)]
struct Kept {
    carry: String,
    account: String,
    pw: String,
}

/// A new TOTP enrolment: show the secret (or the URI as a QR code) once.
pub struct TotpEnrolment {
    /// The shared secret, base32.
    pub secret: String,
    /// The `otpauth://` URI authenticator apps read.
    pub otpauth_uri: String,
    /// The URI as a QR code, an SVG document.
    pub qr_svg: String,
}

impl Auth {
    /// The second step's challenge for a user whose password was right.
    pub(super) async fn second_step(
        &self,
        user: &entity::user::Model,
        carry: String,
    ) -> Result<MfaChallenge, Error> {
        let kept = Kept {
            carry,
            account: user.email.clone(),
            pw: email_tokens::binding(&user.password_hash),
        };
        let state = serde_json::to_string(&kept)
            .map_err(|e| Error::caused("keeping a login's second step", e))?;
        let token = challenges::create(
            &self.db,
            Purpose::MfaLogin,
            Some(UserId(user.id)),
            None,
            Some(state),
        )
        .await?;
        tracing::info!(user_id = %user.id, "password accepted; a second factor is required");
        Ok(MfaChallenge {
            mfa_token: token,
            methods: vec!["totp"],
            expires_in: Purpose::MfaLogin.lifetime().whole_seconds() as u64,
        })
    }

    /// The login waiting behind `mfa_token`; `invalid_mfa_token` when there is none
    /// (unknown, used or expired).
    pub async fn pending_login(&self, mfa_token: &str) -> Result<PendingLogin, Error> {
        let pending = challenges::peek(&self.db, Purpose::MfaLogin, mfa_token)
            .await?
            .ok_or(FactorError::InvalidMfaToken)?;
        let kept: Kept = pending
            .state
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .ok_or(FactorError::InvalidMfaToken)?;
        Ok(PendingLogin {
            user_id: pending.user.ok_or(FactorError::InvalidMfaToken)?,
            account: kept.account,
            carry: kept.carry,
            token: mfa_token.to_owned(),
            password_binding: kept.pw,
        })
    }

    /// Finishes a login with its second factor: a session at aal2. A wrong code is
    /// `invalid_code` and leaves the step open (the caller's failure budget bounds
    /// the guesses); a right one is spent, and so is the step.
    pub async fn complete_login(
        &self,
        pending: &PendingLogin,
        proof: Proof,
        client: ClientInfo,
    ) -> Result<(User, Issued), Error> {
        let user_id = pending.user_id;
        let Some(spent) = self.check_proof(user_id, &proof).await? else {
            tracing::warn!(
                security_event = "second_factor_failed",
                user_id = %user_id,
                method = proof.method().as_str(),
                ip = client.ip.as_deref().unwrap_or("-"),
                "wrong second factor at login"
            );
            activity::record(
                &self.db,
                user_id,
                activity::Kind::SecondFactorFailed,
                None,
                Some(&client),
            )
            .await;
            return Err(FactorError::InvalidCode.into());
        };
        if !challenges::take(&self.db, Purpose::MfaLogin, &pending.token).await? {
            // Another request finished this login first: a recovery code spent
            // here signed nobody in, so it is given back (a TOTP step stays spent:
            // the code was used, and the next one comes in 30 s).
            if let Spent::RecoveryCode(id) = spent {
                second_factors::unspend_recovery_code(&self.db, id).await?;
            }
            return Err(FactorError::InvalidMfaToken.into());
        }
        let user = accounts::find(&self.db, user_id.0)
            .await?
            .ok_or(FactorError::InvalidMfaToken)?;
        // The password changed (a reset) since the first step: it proves nothing now.
        if email_tokens::binding(&user.password_hash) != pending.password_binding {
            return Err(FactorError::InvalidMfaToken.into());
        }
        if user.blocked_at.is_some() {
            return Err(AuthError::AccountBlocked.into());
        }
        if self.require_verified_email && user.email_verified_at.is_none() {
            return Err(Error::EmailUnverified);
        }
        let amr = Amr::of(Method::Pwd).with(proof.method());
        self.open_session(&user, amr, client).await
    }

    /// Whether `proof` holds for `user`, spending it if so: what was spent.
    async fn check_proof(&self, user: UserId, proof: &Proof) -> Result<Option<Spent>, Error> {
        match proof {
            Proof::Totp(code) => Ok(second_factors::check_totp(&self.db, user, code)
                .await?
                .then_some(Spent::TotpStep)),
            Proof::RecoveryCode(code) => {
                let used = second_factors::use_recovery_code(&self.db, user, code).await?;
                if used.is_some() {
                    let left = second_factors::recovery_codes_left(&self.db, user).await?;
                    tracing::info!(
                        security_event = "recovery_code_used",
                        user_id = %user,
                        left,
                        "recovery code used"
                    );
                }
                Ok(used.map(Spent::RecoveryCode))
            }
        }
    }

    /// Re-authenticates the caller's session: `auth_at` becomes now and the
    /// method joins its `amr` (a second factor raises it to aal2); no new session.
    /// An account with a second factor needs one here: a password alone is
    /// `mfa_required`. A wrong password or code changes nothing.
    pub async fn reauthenticate(
        &self,
        who: &Identity,
        with: Reauth,
        client: ClientInfo,
    ) -> Result<Assurance, Error> {
        let user = who.user_id;
        let method = match with {
            Reauth::Password(password) => {
                // A password proves less than an account with a factor can: it
                // would make a stale session recent (outside attack, issue 35).
                if self.has_second_factor(user).await? {
                    return Err(FactorError::SecondFactorRequired.into());
                }
                if !accounts::check_password(&self.db, &self.passwords, user.0, password).await? {
                    self.reauth_failed(who, Method::Pwd, &client).await;
                    return Err(AuthError::InvalidCredentials.into());
                }
                Method::Pwd
            }
            Reauth::Factor(proof) => {
                let method = proof.method();
                if self.check_proof(user, &proof).await?.is_none() {
                    self.reauth_failed(who, method, &client).await;
                    return Err(FactorError::InvalidCode.into());
                }
                method
            }
            Reauth::Passkey(credential) => {
                self.check_own_passkey(who, credential).await?;
                Method::Webauthn
            }
        };
        let assurance = self
            .sessions
            .step_up(who.session_id, user, method)
            .await?
            .ok_or(AuthError::SessionRevoked)?;
        tracing::info!(
            security_event = "reauthenticated",
            user_id = %user,
            session_id = %who.session_id,
            method = method.as_str(),
            aal = assurance.aal.as_str(),
            "session re-authenticated"
        );
        Ok(assurance)
    }

    async fn reauth_failed(&self, who: &Identity, method: Method, client: &ClientInfo) {
        tracing::warn!(
            security_event = "reauth_failed",
            user_id = %who.user_id,
            session_id = %who.session_id,
            method = method.as_str(),
            "wrong re-authentication"
        );
        activity::record(
            &self.db,
            who.user_id,
            activity::Kind::SecondFactorFailed,
            Some(who.session_id),
            Some(client),
        )
        .await;
    }

    /// The step-up check of every sensitive operation: the caller's session
    /// authenticated within `DOORMAN_STEP_UP_SECONDS` (else `step_up_required`),
    /// and, when the account has a second factor (TOTP or a passkey), at aal2
    /// (else `mfa_required`): a password alone proves less than the account can.
    /// Read from the session as it is now (`who.assurance`), never from a token.
    ///
    /// Every change to an account's factors (adding or removing TOTP or a passkey)
    /// asks it too: otherwise whoever holds a stale session (and, for a fresh
    /// password login, the password) could add a factor of their own and step up
    /// with it, or lock the owner out (outside attack, issue 35). Adding a factor
    /// checks the level again in its transaction, against factors added meanwhile.
    pub async fn require_recent(&self, who: &Identity) -> Result<(), Error> {
        if !who
            .assurance
            .recent(time::OffsetDateTime::now_utc(), self.step_up)
        {
            return Err(FactorError::StepUpRequired.into());
        }
        if who.assurance.aal < Aal::Aal2 && self.has_second_factor(who.user_id).await? {
            return Err(FactorError::SecondFactorRequired.into());
        }
        Ok(())
    }

    /// Whether the account has TOTP on or a passkey.
    pub(super) async fn has_second_factor(&self, user: UserId) -> Result<bool, Error> {
        Ok(second_factors::has_factor_in(&self.db, user).await?)
    }

    /// The account's second factors.
    pub async fn factors(&self, user: UserId) -> Result<Factors, Error> {
        let totp = second_factors::totp_on(&self.db, user).await?;
        Ok(Factors {
            totp,
            passkeys: self.passkey_count(user).await?,
            recovery_codes_left: if totp {
                second_factors::recovery_codes_left(&self.db, user).await?
            } else {
                0
            },
        })
    }

    /// Starts a TOTP enrolment (replacing a pending one); `totp_enabled` while a
    /// confirmed one exists. A factor change ([`Auth::require_recent`]).
    pub async fn begin_totp(&self, who: &Identity) -> Result<TotpEnrolment, Error> {
        self.require_recent(who).await?;
        let secret = second_factors::begin_totp(&self.db, who.user_id)
            .await?
            .ok_or(FactorError::TotpEnabled)?;
        let account = self
            .user(who.user_id)
            .await?
            .map(|u| u.email)
            .ok_or(AuthError::SessionRevoked)?;
        let otpauth_uri = totp::otpauth_uri(&self.totp_issuer, &account, &secret);
        Ok(TotpEnrolment {
            qr_svg: totp::qr_svg(&otpauth_uri)
                .ok_or_else(|| Error::internal("the otpauth URI does not fit a QR code"))?,
            otpauth_uri,
            secret,
        })
    }

    /// Confirms the pending enrolment with a first code: TOTP is on, and the ten
    /// recovery codes are returned (shown once). A factor change
    /// ([`Auth::require_recent`]). The code proves the caller holds the new
    /// secret, not who they are: the session's level and `auth_at` stay as they
    /// were (a re-authentication with a code raises them).
    pub async fn confirm_totp(&self, who: &Identity, code: &str) -> Result<Vec<String>, Error> {
        self.require_recent(who).await?;
        if second_factors::totp_on(&self.db, who.user_id).await? {
            return Err(FactorError::TotpEnabled.into());
        }
        let at_aal2 = who.assurance.aal == Aal::Aal2;
        let Some(codes) =
            second_factors::confirm_totp(&self.db, who.user_id, code, at_aal2).await?
        else {
            return Err(if !at_aal2 && self.has_second_factor(who.user_id).await? {
                FactorError::SecondFactorRequired
            } else if second_factors::totp_pending(&self.db, who.user_id).await? {
                FactorError::InvalidCode
            } else {
                FactorError::TotpNotPending
            }
            .into());
        };
        tracing::info!(security_event = "totp_enabled", user_id = %who.user_id, "TOTP turned on");
        activity::record(
            &self.db,
            who.user_id,
            activity::Kind::FactorAdded,
            Some(who.session_id),
            None,
        )
        .await;
        self.sessions.factor_added(who.user_id, Method::Otp);
        Ok(codes)
    }

    /// Turns TOTP off (its recovery codes go with it): every session that used a
    /// TOTP or recovery code drops them from its `amr`, and those that were aal2
    /// by them drop to aal1 (their sockets leave the rooms that require aal2).
    /// `false` when TOTP was not on.
    pub async fn remove_totp(&self, who: &Identity) -> Result<bool, Error> {
        self.require_recent(who).await?;
        if !second_factors::remove_totp(&self.db, who.user_id).await? {
            return Ok(false);
        }
        tracing::info!(security_event = "totp_disabled", user_id = %who.user_id, "TOTP turned off");
        self.factor_gone(who, &[Method::RecoveryCode, Method::Otp])
            .await?;
        Ok(true)
    }

    /// After a factor was removed (its `methods`, the last one the factor's name in
    /// the notice): the activity entry, and every session of the user that used one
    /// of them drops it, here and on every instance.
    pub(super) async fn factor_gone(
        &self,
        who: &Identity,
        methods: &[Method],
    ) -> Result<(), Error> {
        activity::record(
            &self.db,
            who.user_id,
            activity::Kind::FactorRemoved,
            Some(who.session_id),
            None,
        )
        .await;
        for (i, method) in methods.iter().enumerate() {
            let notice = (i + 1 == methods.len()).then_some(FactorChange::Removed(*method));
            self.sessions
                .forget_method(who.user_id, *method, notice)
                .await?;
        }
        Ok(())
    }
}

/// How a session re-authenticates.
pub enum Reauth {
    /// The account's password (refused for an account with TOTP on).
    Password(String),
    /// A TOTP or recovery code.
    Factor(Proof),
    /// A passkey's assertion (the JSON of the browser's `PublicKeyCredential`),
    /// answering options from [`Auth::start_passkey_assertion`].
    Passkey(serde_json::Value),
}

/// An account's second factors, as `/api/me/factors` lists them.
pub struct Factors {
    /// TOTP is on.
    pub totp: bool,
    /// Passkeys registered.
    pub passkeys: u64,
    /// Unused recovery codes.
    pub recovery_codes_left: u64,
}
