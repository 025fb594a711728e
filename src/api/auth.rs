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
        CookieSession, Credentials, LoginMode, LoginRequest, RefreshRequest, RegisterRequest,
        TokenPair, User,
    },
    optional_json::OptionalJson,
};
use crate::{
    Doorman,
    auth::{AuthError, Email, Issued, cookies},
    extract::Authenticated,
    http::error::{Fail, error_set},
    state::AppState,
};

error_set!(RegisterErrors: 400, 408, 409, 413, 415, 429, 503);
error_set!(LoginErrors: 400, 401, 403, 408, 413, 415, 429, 503);
error_set!(RefreshErrors: 400, 401, 403, 408, 413, 415, 429, 503);
error_set!(LogoutErrors: 401, 403, 503);

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
    ) -> Result<LoggedIn, Fail<LoginErrors>> {
        let ip = state.ip(req);
        let ip_key = crate::http::client_ip::limit_key(ip);
        state.limits.login.check(&ip_key)?;
        let account = Email::parse(&body.email)
            .map(|e| e.as_str().to_owned())
            .unwrap_or_else(|_| body.email.trim().to_lowercase());
        let auth = &state.auth;
        // A device this account has logged in from is not held back by guesses
        // made elsewhere.
        // Any genuine copy counts: a sibling site can plant a second cookie of the
        // same name, and must not be able to hide the real one that way.
        let device = cookies::find_all(req.headers().get_all(COOKIE), auth.cookies().device_name)
            .into_iter()
            .find_map(|value| auth.devices().recognise(value, &account));
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
        let (user, issued) = match state.auth.login(&email, password.0, client).await {
            Ok(done) => {
                attempt.finish(false);
                done
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
        Ok(respond(
            &state,
            jar,
            mode.unwrap_or_default(),
            user.into(),
            issued,
        ))
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
