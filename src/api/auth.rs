//! `/api/auth`: register, login, refresh, logout.

use poem::{
    Request,
    http::header::COOKIE,
    web::{Data, cookie::CookieJar},
};
use poem_openapi::{ApiResponse, OpenApi, payload::Json};

use super::{
    ApiTags,
    models::{
        CookieSession, Credentials, LoginMode, LoginRequest, MfaChallengeBody, MfaLoginRequest,
        PasskeyLoginRequest, ReauthRequest, RefreshRequest, RegisterRequest, TokenPair, User,
        credential_json,
    },
    optional_json::OptionalJson,
    text::Secret,
};
use crate::{
    Doorman,
    auth::{AuthError, Email, FactorError, Issued, LoginStep, Proof, Reauth, cookies},
    extract::Authenticated,
    http::error::{Error, Fail, error_set},
    state::AppState,
};

error_set!(RegisterErrors: 400, 408, 409, 413, 415, 429, 503);
error_set!(LoginErrors: 400, 401, 403, 408, 413, 415, 429, 503);
error_set!(RefreshErrors: 400, 401, 403, 408, 413, 415, 429, 503);
error_set!(LogoutErrors: 401, 403, 503);
error_set!(MfaLoginErrors: 400, 401, 403, 408, 413, 415, 429, 503);
error_set!(ReauthErrors: 400, 401, 403, 408, 409, 413, 415, 429, 503);
error_set!(PasskeyFinishErrors: 400, 401, 403, 408, 409, 413, 415, 429, 503);
error_set!(PasskeyStartErrors: 409, 429, 503);

#[derive(ApiResponse)]
pub enum Registered {
    /// The account was created.
    #[oai(status = 201)]
    Created(Json<User>),
}

#[derive(ApiResponse)]
pub enum LoggedIn {
    /// Token mode: the tokens. Cookie mode: `Set-Cookie` carries the access cookie
    /// and the refresh cookie (path `/api/auth` over http; `__Host-` with path `/` over
    /// https); the body carries no token.
    #[oai(status = 200)]
    Ok(Json<Credentials>),
}

#[derive(ApiResponse)]
pub enum LoginStarted {
    /// Token mode: the tokens. Cookie mode: `Set-Cookie` carries the access cookie
    /// and the refresh cookie (path `/api/auth` over http; `__Host-` with path `/` over
    /// https); the body carries no token.
    #[oai(status = 200)]
    Ok(Json<Credentials>),
    /// The password was right and the account has a second factor: no session yet.
    /// Finish with `POST /api/auth/login/mfa` (the `mfa_token` and a code) within
    /// `expires_in` seconds; it answers in the mode asked for here.
    #[oai(status = 202)]
    SecondFactor(Json<MfaChallengeBody>),
}

#[derive(ApiResponse)]
pub enum Reauthenticated {
    /// The current session's `auth_at` is now, and the method joined its `amr` (a
    /// code raises it to aal2); no new session, no new tokens.
    #[oai(status = 204)]
    NoContent,
}

#[derive(ApiResponse)]
pub enum LoggedOut {
    /// The session is revoked, its sockets closed, its cookies cleared.
    #[oai(status = 204)]
    NoContent,
}

/// doorman's sign-in: `POST /api/auth/register`, `/login`, `/refresh`, `/logout`
/// (tag `Auth`), with its per-IP and per-account login limits and device cookies.
pub struct AuthApi;

#[OpenApi(prefix_path = "/api/auth", tag = "ApiTags::Auth")]
impl AuthApi {
    /// Create an account
    #[oai(path = "/register", method = "post", operation_id = "register")]
    async fn register(
        &self,
        state: Data<&Doorman>,
        req: &Request,
        body: Json<RegisterRequest>,
    ) -> Result<Registered, Fail<RegisterErrors>> {
        state.limits.register.check(&state.limit_key(req))?;
        let RegisterRequest {
            email,
            password,
            display_name,
        } = body.0;
        let user = state
            .auth
            .register(&email, password.0, display_name.as_deref())
            .await?;
        Ok(Registered::Created(Json(user.into())))
    }

    /// Log in
    ///
    /// `mode: token` (default) returns an access token and a refresh token.
    /// `mode: cookie` sets them as HttpOnly cookies instead. An unknown email and a
    /// wrong password get the same `invalid_credentials`. Every successful login
    /// also sets a long-lived device cookie (path `/api/auth` over http, `__Host-`
    /// with path `/` over https; kept after logout):
    /// failed guesses made elsewhere never stop a login from that device.
    /// While `DOORMAN_REQUIRE_VERIFIED_EMAIL` is on, the right password for an
    /// unverified address is 403 `email_unverified`, and a new verification link is
    /// mailed there.
    #[oai(path = "/login", method = "post", operation_id = "login")]
    async fn login(
        &self,
        state: Data<&Doorman>,
        req: &Request,
        jar: &CookieJar,
        body: Json<LoginRequest>,
    ) -> Result<LoginStarted, Fail<LoginErrors>> {
        let ip = state.ip(req);
        let ip_key = crate::http::client_ip::limit_key(ip);
        state.limits.login.check(&ip_key)?;
        let account = Email::parse(&body.email)
            .map(|e| e.as_str().to_owned())
            .unwrap_or_else(|_| body.email.trim().to_lowercase());
        let auth = &state.auth;
        let device = recognised_device(&state, req, &account);
        let attempt = state
            .limits
            .login_failures
            .begin(&account, ip_key, device)?;
        let client = state.client_info(req);
        let LoginRequest {
            email,
            password,
            mode,
        } = body.0;
        let mode = mode.unwrap_or_default();
        let step = state
            .auth
            .login(&email, password.0, client, mode.as_str().to_owned())
            .await;
        let (user, issued) = match step {
            Ok(LoginStep::Done(user, issued)) => {
                attempt.finish(false);
                (user, issued)
            }
            Ok(LoginStep::SecondFactor(challenge)) => {
                // The password was right: no failure. The second step spends the
                // same budget for each wrong code.
                attempt.finish(false);
                return Ok(LoginStarted::SecondFactor(Json(MfaChallengeBody {
                    mfa_required: challenge.methods.iter().map(|m| (*m).to_owned()).collect(),
                    mfa_token: challenge.mfa_token,
                    expires_in: challenge.expires_in,
                })));
            }
            Err(e) => {
                attempt.finish(matches!(
                    e,
                    crate::auth::Error::Auth(AuthError::InvalidCredentials)
                ));
                // The right password for an unverified address: mail a new link,
                // within the address's mail budget.
                if matches!(e, crate::auth::Error::EmailUnverified)
                    && let Ok(address) = Email::parse(&account)
                    && state.limits.mail_address.check(&account).is_ok()
                {
                    state.account_mail.resend_verification(address);
                }
                return Err(e.into());
            }
        };
        jar.add(auth.cookies().device(&auth.devices().mint(&account)));
        let LoggedIn::Ok(body) = respond(&state, jar, mode, user.into(), issued);
        Ok(LoginStarted::Ok(body))
    }

    /// Finish a login with a second factor
    ///
    /// The second step after `POST /api/auth/login` answered 202: the `mfa_token` and
    /// `code` (the authenticator app's 6 digits; a code is accepted once, one
    /// 30-second step of clock skew either way) or `recovery_code` (each works once;
    /// used when no `code` is sent). Answers as the login would have, in the mode the first step
    /// asked for; the session is at aal2. A wrong code is 401 `invalid_code` and
    /// counts against the same failure budget as a wrong password; the step stays
    /// open until it expires or succeeds (401 `invalid_mfa_token` after).
    #[oai(path = "/login/mfa", method = "post", operation_id = "loginMfa")]
    async fn login_mfa(
        &self,
        state: Data<&Doorman>,
        req: &Request,
        jar: &CookieJar,
        body: Json<MfaLoginRequest>,
    ) -> Result<LoggedIn, Fail<MfaLoginErrors>> {
        let ip = state.ip(req);
        let ip_key = crate::http::client_ip::limit_key(ip);
        state.limits.login.check(&ip_key)?;
        let MfaLoginRequest {
            mfa_token,
            code,
            recovery_code,
        } = body.0;
        let proof = one_proof(code, recovery_code)?;
        let auth = &state.auth;
        let pending = auth.pending_login(&mfa_token.0).await?;
        let device = recognised_device(&state, req, &pending.account);
        let attempt = state
            .limits
            .login_failures
            .begin(&pending.account, ip_key, device)?;
        let client = state.client_info(req);
        let (user, issued) = match auth.complete_login(&pending, proof, client).await {
            Ok(done) => {
                attempt.finish(false);
                done
            }
            Err(e) => {
                attempt.finish(matches!(
                    e,
                    crate::auth::Error::Factor(FactorError::InvalidCode)
                ));
                return Err(e.into());
            }
        };
        jar.add(
            auth.cookies()
                .device(&auth.devices().mint(&pending.account)),
        );
        let mode = if pending.carry == LoginMode::Cookie.as_str() {
            LoginMode::Cookie
        } else {
            LoginMode::Token
        };
        Ok(respond(&state, jar, mode, user.into(), issued))
    }

    /// Start a passkey sign-in (or re-authentication)
    ///
    /// The request options for `navigator.credentials.get({publicKey})`: discoverable
    /// (no user named: the authenticator offers the passkeys it holds for this
    /// site), user verification required. Send the browser's answer to `POST
    /// /api/auth/passkey/finish` (sign in) or `POST /api/auth/reauth` as
    /// `credential` (re-authenticate), within five minutes; each options answer
    /// once. 409 `passkeys_unavailable` when the public URL's host is an IP address.
    #[oai(
        path = "/passkey/start",
        method = "post",
        operation_id = "startPasskeyLogin"
    )]
    async fn passkey_start(
        &self,
        state: Data<&Doorman>,
        req: &Request,
    ) -> Result<Json<serde_json::Value>, Fail<PasskeyStartErrors>> {
        state.limits.login.check(&state.limit_key(req))?;
        Ok(Json(state.auth.start_passkey_assertion().await?))
    }

    /// Sign in with a passkey
    ///
    /// The browser's answer to the options of `POST /api/auth/passkey/start` opens a
    /// session for the passkey's user, at aal2 (`amr: ["webauthn"]`), in the mode
    /// asked for (`token` by default). 401 `invalid_passkey` for an answer that
    /// does not verify (which check failed is logged, not said).
    #[oai(
        path = "/passkey/finish",
        method = "post",
        operation_id = "finishPasskeyLogin"
    )]
    async fn passkey_finish(
        &self,
        state: Data<&Doorman>,
        req: &Request,
        jar: &CookieJar,
        body: Json<PasskeyLoginRequest>,
    ) -> Result<LoggedIn, Fail<PasskeyFinishErrors>> {
        state.limits.login.check(&state.limit_key(req))?;
        let PasskeyLoginRequest { credential, mode } = body.0;
        let client = state.client_info(req);
        let (user, issued) = state
            .auth
            .passkey_login(credential_json(credential), client)
            .await?;
        let auth = &state.auth;
        jar.add(auth.cookies().device(&auth.devices().mint(&user.email)));
        Ok(respond(
            &state,
            jar,
            mode.unwrap_or_default(),
            user.into(),
            issued,
        ))
    }

    /// Re-authenticate the current session (step-up)
    ///
    /// One of `credential` (a passkey's answer to `POST /api/auth/passkey/start`),
    /// `code` (TOTP), `recovery_code` and `password` (the first sent, in this
    /// order). The session's
    /// `auth_at` becomes now, so the operations that need a recent authentication
    /// (password change, removing a factor, revoking other sessions, deleting a
    /// room, admin actions) are allowed for `DOORMAN_STEP_UP_SECONDS`; a code or a
    /// passkey also raises the session to aal2. No new session and no new tokens.
    /// With a second factor on the account (TOTP or a passkey), a password alone is
    /// 403 `mfa_required`. Wrong passwords and
    /// codes count against the login failure budget; a passkey that does not
    /// verify is 401 `invalid_passkey`.
    #[oai(path = "/reauth", method = "post", operation_id = "reauthenticate")]
    async fn reauth(
        &self,
        state: Data<&Doorman>,
        req: &Request,
        auth: Authenticated,
        body: Json<ReauthRequest>,
    ) -> Result<Reauthenticated, Fail<ReauthErrors>> {
        let ReauthRequest {
            password,
            code,
            recovery_code,
            credential,
        } = body.0;
        // The strongest one sent (a client sending several gets a definite answer).
        let with = match (credential, code, recovery_code, password) {
            (Some(credential), ..) => Reauth::Passkey(credential_json(credential)),
            (None, Some(code), ..) => Reauth::Factor(Proof::Totp(code.0)),
            (None, None, Some(code), _) => Reauth::Factor(Proof::RecoveryCode(code.0)),
            (None, None, None, Some(password)) => Reauth::Password(password.0),
            (None, None, None, None) => {
                return Err(Error::Auth(AuthError::InvalidCredentials).into());
            }
        };
        let attempt = state.guess_by(req, &auth.0).await?;
        let client = state.client_info(req);
        let result = state.auth.reauthenticate(&auth.0, with, client).await;
        attempt.finish(matches!(
            result,
            Err(crate::auth::Error::Auth(AuthError::InvalidCredentials)
                | crate::auth::Error::Factor(FactorError::InvalidCode))
        ));
        result?;
        Ok(Reauthenticated::NoContent)
    }

    /// Exchange a refresh token for a new pair
    ///
    /// Token mode: send `{"refresh_token": "…"}`. Cookie mode: send `{}` or no body
    /// at all, and the refresh cookie (and an allowed `Origin`). The refresh token is rotated: the
    /// old one is spent, and presenting it again after a short grace window revokes
    /// the whole session. While `DOORMAN_REQUIRE_VERIFIED_EMAIL` is on, an
    /// unverified user's session ends here instead: 403 `email_unverified`.
    #[oai(path = "/refresh", method = "post", operation_id = "refresh")]
    async fn refresh(
        &self,
        state: Data<&Doorman>,
        req: &Request,
        jar: &CookieJar,
        body: OptionalJson<Option<RefreshRequest>>,
    ) -> Result<LoggedIn, Fail<RefreshErrors>> {
        state.limits.refresh.check(&state.limit_key(req))?;
        let auth = &state.auth;
        let (token, mode) = match body.0.and_then(|b| b.refresh_token) {
            Some(token) => (token.0, LoginMode::Token),
            None => {
                let headers = req.headers().get_all(COOKIE);
                let token = cookies::find(headers, auth.cookies().refresh_name)?
                    .ok_or(AuthError::MissingCredentials)?
                    .to_owned();
                auth.origins().check_cookie_request(req)?;
                (token, LoginMode::Cookie)
            }
        };
        let (user, issued) = auth.refresh(&token).await?;
        Ok(respond(&state, jar, mode, user.into(), issued))
    }

    /// Log out
    ///
    /// Revokes the current session: its access and refresh tokens stop working at
    /// once and its WebSockets close with 4403. Clears the cookies.
    #[oai(path = "/logout", method = "post", operation_id = "logout")]
    async fn logout(
        &self,
        state: Data<&Doorman>,
        auth: Authenticated,
        jar: &CookieJar,
    ) -> Result<LoggedOut, Fail<LogoutErrors>> {
        state.auth.logout(&auth.0).await?;
        for cookie in state.auth.cookies().cleared() {
            jar.add(cookie);
        }
        Ok(LoggedOut::NoContent)
    }
}

/// A TOTP code, else a recovery code; neither is a wrong code (a proof that does
/// not hold). Both: the code.
fn one_proof(code: Option<Secret>, recovery_code: Option<Secret>) -> Result<Proof, Error> {
    match (code, recovery_code) {
        (Some(code), _) => Ok(Proof::Totp(code.0)),
        (None, Some(code)) => Ok(Proof::RecoveryCode(code.0)),
        (None, None) => Err(Error::Factor(FactorError::InvalidCode)),
    }
}

/// The device cookie of this account the request carries, if any: a device this
/// account has logged in from is not held back by guesses made elsewhere. Any
/// genuine copy counts: a sibling site can plant a second cookie of the same
/// name, and must not be able to hide the real one that way.
fn recognised_device(state: &AppState, req: &Request, account: &str) -> Option<String> {
    let auth = &state.auth;
    cookies::find_all(req.headers().get_all(COOKIE), auth.cookies().device_name)
        .into_iter()
        .find_map(|value| auth.devices().recognise(value, account))
}

/// The login/refresh answer in the requested mode.
fn respond(
    state: &AppState,
    jar: &CookieJar,
    mode: LoginMode,
    user: User,
    issued: Issued,
) -> LoggedIn {
    let session_id = issued.session_id.0;
    match mode {
        LoginMode::Token => LoggedIn::Ok(Json(Credentials::Token(TokenPair {
            access_token: issued.access_token,
            token_type: "Bearer".to_owned(),
            expires_in: issued.expires_in,
            refresh_token: issued.refresh_token,
            refresh_expires_in: issued.refresh_expires_in,
            session_id,
            user,
        }))),
        LoginMode::Cookie => {
            let cookies = state.auth.cookies();
            jar.add(cookies.access(&issued.access_token, issued.expires_in));
            jar.add(cookies.refresh(&issued.refresh_token, issued.refresh_expires_in));
            LoggedIn::Ok(Json(Credentials::Cookie(CookieSession {
                expires_in: issued.expires_in,
                refresh_expires_in: issued.refresh_expires_in,
                session_id,
                user,
            })))
        }
    }
}
