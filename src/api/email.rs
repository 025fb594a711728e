//! `/api/auth/verify-email…` and `/api/auth/password-reset…`: links mailed to the
//! account's address, with the token in the URL fragment, that the demo page (or
//! any client) hands back here.

use poem::{Request, web::Data};
use poem_openapi::{ApiResponse, OpenApi, payload::Json};

use super::{
    ApiTags,
    models::{PasswordResetConfirmRequest, PasswordResetRequest, VerifyEmailRequest},
};
use crate::{
    Doorman,
    auth::{AuthError, Email},
    extract::Authenticated,
    http::error::{Fail, error_set},
};

error_set!(SendVerificationErrors: 401, 403, 409, 429, 503);
error_set!(UseTokenErrors: 400, 403, 408, 413, 415, 429, 503);
error_set!(RequestResetErrors: 400, 408, 413, 415, 429, 503);

#[derive(ApiResponse)]
pub enum Mailing {
    /// The link is on its way (or, for a password reset, would be if the address
    /// had an account: the answer is the same).
    #[oai(status = 202)]
    Accepted,
}

#[derive(ApiResponse)]
pub enum Done {
    /// Done.
    #[oai(status = 204)]
    NoContent,
}

/// Email verification and password reset by mailed links (tag `Auth`):
/// `POST /api/auth/verify-email/send`, `/verify-email`, `/password-reset`,
/// `/password-reset/confirm`.
pub struct EmailApi;

#[OpenApi(prefix_path = "/api/auth", tag = "ApiTags::Auth")]
impl EmailApi {
    /// Mail me a verification link
    ///
    /// Mails a single-use link (valid 24 hours) to the caller's address; a newer
    /// link replaces an older one. 409 `already_verified` when there is nothing
    /// to verify. Each address is mailed at most `DOORMAN_MAIL_PER_ADDRESS_PER_HOUR`
    /// links an hour.
    #[oai(
        path = "/verify-email/send",
        method = "post",
        operation_id = "sendVerificationEmail"
    )]
    async fn send_verification(
        &self,
        state: Data<&Doorman>,
        req: &Request,
        auth: Authenticated,
    ) -> Result<Mailing, Fail<SendVerificationErrors>> {
        state.limits.mail_ip.check(&state.limit_key(req))?;
        let user = state
            .auth
            .user(auth.0.user_id)
            .await?
            .ok_or(AuthError::SessionRevoked)?;
        if user.email_verified_at.is_some() {
            return Err(crate::auth::Error::AlreadyVerified.into());
        }
        state.limits.mail_address.check(&user.email)?;
        state.account_mail.send_verification(auth.0.user_id).await?;
        Ok(Mailing::Accepted)
    }

    /// Verify my email address
    ///
    /// Spends the token of a verification link: the account's `email_verified_at`
    /// is set. A token that is unknown, used, expired, replaced by a newer link or
    /// older than the last password change is 403 `invalid_email_token`.
    #[oai(path = "/verify-email", method = "post", operation_id = "verifyEmail")]
    async fn verify(
        &self,
        state: Data<&Doorman>,
        req: &Request,
        body: Json<VerifyEmailRequest>,
    ) -> Result<Done, Fail<UseTokenErrors>> {
        state.limits.email_token.check(&state.limit_key(req))?;
        state
            .auth
            .verify_email(&body.0.token, state.client_info(req))
            .await?;
        Ok(Done::NoContent)
    }

    /// Ask for a password-reset link
    ///
    /// Answers 202 whatever the address: if it has an account, a single-use link
    /// (valid 30 minutes) is mailed there; a newer link replaces an older one.
    /// Limited per client IP and per address (429 alike for every address).
    #[oai(
        path = "/password-reset",
        method = "post",
        operation_id = "requestPasswordReset"
    )]
    async fn request_reset(
        &self,
        state: Data<&Doorman>,
        req: &Request,
        body: Json<PasswordResetRequest>,
    ) -> Result<Mailing, Fail<RequestResetErrors>> {
        state.limits.mail_ip.check(&state.limit_key(req))?;
        let email = Email::parse(&body.0.email)?;
        state
            .limits
            .mail_address
            .check(&email.as_str().to_owned())?;
        // Whether the address has an account is found out in the background: this
        // answer, and how long it takes, are the same either way.
        state.account_mail.request_reset(email)?;
        Ok(Mailing::Accepted)
    }

    /// Set a new password from a reset link
    ///
    /// Spends the token of a password-reset link and sets `new_password`. Every
    /// session of the account is revoked (its sockets close with 4403 on every
    /// instance); sign in again with the new password. A token that is unknown,
    /// used, expired, replaced by a newer link or older than the last password
    /// change is 403 `invalid_email_token`.
    #[oai(
        path = "/password-reset/confirm",
        method = "post",
        operation_id = "confirmPasswordReset"
    )]
    async fn confirm_reset(
        &self,
        state: Data<&Doorman>,
        req: &Request,
        body: Json<PasswordResetConfirmRequest>,
    ) -> Result<Done, Fail<UseTokenErrors>> {
        state.limits.email_token.check(&state.limit_key(req))?;
        let PasswordResetConfirmRequest {
            token,
            new_password,
        } = body.0;
        state
            .auth
            .reset_password(&token, new_password.0, state.client_info(req))
            .await?;
        Ok(Done::NoContent)
    }
}
