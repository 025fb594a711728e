//! `/api/me/totp`, `/api/me/passkeys` and `/api/me/factors`: the caller's second
//! factors (tag `Factors`). Signing in with a passkey and re-authentication are
//! `/api/auth/passkey/*` and `POST /api/auth/reauth` (`super::auth`).

use poem::{Request, web::Data};
use poem_openapi::{ApiResponse, OpenApi, param::Path, payload::Json};
use uuid::Uuid;

use super::{
    ApiTags,
    models::{
        FactorsBody, PasskeyBody, PasskeyRegistrationRequest, RecoveryCodes, TotpConfirmRequest,
        TotpEnrolmentBody, credential_json,
    },
};
use crate::{
    Doorman,
    auth::FactorError,
    extract::Authenticated,
    http::error::{Error, Fail, error_set},
};

error_set!(ReadErrors: 401, 403, 503);
error_set!(EnrolErrors: 401, 403, 409, 429, 503);
error_set!(ConfirmErrors: 400, 401, 403, 408, 409, 413, 415, 429, 503);
error_set!(RemoveErrors: 401, 403, 404, 503);
error_set!(PasskeyStartErrors: 401, 403, 409, 429, 503);
error_set!(PasskeyFinishErrors: 400, 401, 403, 408, 409, 413, 415, 503);
error_set!(PasskeyRemoveErrors: 400, 401, 403, 404, 503);

#[derive(ApiResponse)]
pub enum Enrolled {
    /// A pending enrolment (replacing an earlier pending one): add it to an
    /// authenticator app, then confirm it with a first code.
    #[oai(status = 201)]
    Created(Json<TotpEnrolmentBody>),
}

#[derive(ApiResponse)]
pub enum Registered {
    /// The passkey is registered: it signs in (`POST /api/auth/passkey/start`, then
    /// `…/finish`) and re-authenticates. The user's sockets get a `factor_added`
    /// notice.
    #[oai(status = 201)]
    Created(Json<PasskeyBody>),
}

#[derive(ApiResponse)]
pub enum PasskeyRemoved {
    /// Removed. Sessions that a passkey signed in or re-authenticated drop
    /// `webauthn` from their `amr` (and to aal1 unless a code holds them there);
    /// their sockets left the rooms that require aal2 (`unsubscribed`, reason
    /// `mfa_required`); the user's sockets get a `factor_removed` notice.
    #[oai(status = 204)]
    NoContent,
}

#[derive(ApiResponse)]
pub enum Removed {
    /// TOTP is off and its recovery codes are gone. Sessions that were at aal2 by a
    /// TOTP or recovery code are aal1 now; their sockets left the rooms that
    /// require aal2 (`unsubscribed`, reason `mfa_required`).
    #[oai(status = 204)]
    NoContent,
}

/// The caller's second factors: TOTP enrolment, confirmation and removal,
/// passkey registration, listing and removal, and what is on (tag `Factors`).
pub struct FactorApi;

#[OpenApi(prefix_path = "/api/me", tag = "ApiTags::Factors")]
impl FactorApi {
    /// My second factors
    #[oai(path = "/factors", method = "get", operation_id = "factors")]
    async fn factors(
        &self,
        state: Data<&Doorman>,
        auth: Authenticated,
    ) -> Result<Json<FactorsBody>, Fail<ReadErrors>> {
        let f = state.auth.factors(auth.0.user_id).await?;
        Ok(Json(FactorsBody {
            totp: f.totp,
            passkeys: f.passkeys,
            passkeys_available: state.auth.passkeys_available(),
            recovery_codes_left: f.recovery_codes_left,
        }))
    }

    /// Start a TOTP enrolment
    ///
    /// A new secret, and its `otpauth://` URI for a QR code. Nothing changes until
    /// `POST /api/me/totp/confirm` sends a first code; a new start replaces a
    /// pending one. 409 `totp_enabled` while TOTP is on (remove it first). A factor
    /// change: a recent authentication, and aal2 once the account has a factor (403
    /// `step_up_required`, `mfa_required`).
    #[oai(path = "/totp", method = "post", operation_id = "startTotp")]
    async fn start(
        &self,
        state: Data<&Doorman>,
        auth: Authenticated,
    ) -> Result<Enrolled, Fail<EnrolErrors>> {
        state.limits.factor_change.check(&auth.0.user_id)?;
        let enrolment = state.auth.begin_totp(&auth.0).await?;
        Ok(Enrolled::Created(Json(TotpEnrolmentBody {
            secret: enrolment.secret,
            otpauth_uri: enrolment.otpauth_uri,
            qr_svg: enrolment.qr_svg,
        })))
    }

    /// Confirm TOTP with a first code
    ///
    /// TOTP is on from now: logins ask for a code after the password (202, then
    /// `POST /api/auth/login/mfa`). Returns ten recovery codes, shown only now;
    /// each signs in once in place of a code. The user's sockets get a
    /// `factor_added` notice. The caller's session stays as it was (the code proves
    /// the new secret, not the user): re-authenticate with a code for aal2. A wrong
    /// code is 401 `invalid_code` and counts against the login failure budget; 409
    /// `totp_not_pending` without a pending enrolment. A factor change: a recent
    /// authentication, and aal2 once the account has a factor (403
    /// `step_up_required`, `mfa_required`).
    #[oai(path = "/totp/confirm", method = "post", operation_id = "confirmTotp")]
    async fn confirm(
        &self,
        state: Data<&Doorman>,
        req: &Request,
        auth: Authenticated,
        body: Json<TotpConfirmRequest>,
    ) -> Result<Json<RecoveryCodes>, Fail<ConfirmErrors>> {
        let attempt = state.guess_by(req, &auth.0).await?;
        let result = state.auth.confirm_totp(&auth.0, &body.0.code.0).await;
        attempt.finish(matches!(
            result,
            Err(crate::auth::Error::Factor(FactorError::InvalidCode))
        ));
        Ok(Json(RecoveryCodes {
            recovery_codes: result?,
        }))
    }

    /// Turn TOTP off
    ///
    /// Needs a recent authentication at aal2 (403 `step_up_required`,
    /// `mfa_required` otherwise; see `POST /api/auth/reauth`). The recovery codes go
    /// with it; sessions that were
    /// at aal2 by a TOTP or recovery code drop to aal1 on every instance, and the
    /// user's sockets get a `factor_removed` notice. 404 when TOTP was not on.
    #[oai(path = "/totp", method = "delete", operation_id = "removeTotp")]
    async fn remove(
        &self,
        state: Data<&Doorman>,
        auth: Authenticated,
    ) -> Result<Removed, Fail<RemoveErrors>> {
        if state.auth.remove_totp(&auth.0).await? {
            Ok(Removed::NoContent)
        } else {
            Err(Error::NotFound.into())
        }
    }

    /// Start registering a passkey
    ///
    /// The creation options for `navigator.credentials.create({publicKey})` (the
    /// JSON form of WebAuthn Level 3: base64url binaries; a discoverable credential
    /// with user verification; the caller's passkeys excluded). Send the browser's
    /// answer to `POST /api/me/passkeys/register/finish` from this session within
    /// five minutes. 409 `passkeys_unavailable` when the public URL's host is an IP
    /// address; 409 `limit_reached` at 20 passkeys. A factor change: a recent
    /// authentication, and aal2 once the account has a factor (403
    /// `step_up_required`, `mfa_required`), here and at the finish.
    #[oai(
        path = "/passkeys/register/start",
        method = "post",
        operation_id = "startPasskeyRegistration"
    )]
    async fn passkey_register_start(
        &self,
        state: Data<&Doorman>,
        auth: Authenticated,
    ) -> Result<Json<serde_json::Value>, Fail<PasskeyStartErrors>> {
        state.limits.factor_change.check(&auth.0.user_id)?;
        Ok(Json(state.auth.start_passkey_registration(&auth.0).await?))
    }

    /// Finish registering a passkey
    ///
    /// The browser's answer (`credential`) and an optional `name`. 401
    /// `invalid_passkey` for an answer that does not verify (another session's
    /// challenge, an expired or used one, another origin, a credential registered
    /// already).
    #[oai(
        path = "/passkeys/register/finish",
        method = "post",
        operation_id = "finishPasskeyRegistration"
    )]
    async fn passkey_register_finish(
        &self,
        state: Data<&Doorman>,
        auth: Authenticated,
        body: Json<PasskeyRegistrationRequest>,
    ) -> Result<Registered, Fail<PasskeyFinishErrors>> {
        let PasskeyRegistrationRequest { credential, name } = body.0;
        let info = state
            .auth
            .finish_passkey_registration(&auth.0, credential_json(credential), name)
            .await?;
        Ok(Registered::Created(Json(info.into())))
    }

    /// My passkeys
    #[oai(path = "/passkeys", method = "get", operation_id = "listPasskeys")]
    async fn passkeys(
        &self,
        state: Data<&Doorman>,
        auth: Authenticated,
    ) -> Result<Json<Vec<PasskeyBody>>, Fail<ReadErrors>> {
        let list = state.auth.passkeys(auth.0.user_id).await?;
        Ok(Json(list.into_iter().map(PasskeyBody::from).collect()))
    }

    /// Remove a passkey
    ///
    /// Needs a recent authentication at aal2 (403 `step_up_required`,
    /// `mfa_required` otherwise; see `POST /api/auth/reauth`). 404 for a passkey
    /// that is not the caller's.
    #[oai(
        path = "/passkeys/:id",
        method = "delete",
        operation_id = "removePasskey"
    )]
    async fn passkey_remove(
        &self,
        state: Data<&Doorman>,
        auth: Authenticated,
        id: Path<Uuid>,
    ) -> Result<PasskeyRemoved, Fail<PasskeyRemoveErrors>> {
        if state.auth.remove_passkey(&auth.0, id.0).await? {
            Ok(PasskeyRemoved::NoContent)
        } else {
            Err(Error::NotFound.into())
        }
    }
}
