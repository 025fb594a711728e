//! A typed client for doorman's HTTP API and WebSocket: one method per endpoint,
//! typed credentials, optional extra headers. It talks to any base URL, so the
//! in-process [`TestApp`](crate::helpers::TestApp) and the real binary in
//! [`ServerProcess`](crate::helpers::ServerProcess) are driven the same way.
//!
//! An endpoint method returns a [`Call`]: add headers with `.origin(…)`,
//! `.forwarded_for(…)` or `.header(…)`, then `.await` it for the
//! `reqwest::Response`.
//!
//! ```ignore
//! let me = app.me(&tokens).await;
//! let out = app.logout(cookies.both()).origin(&app.origin()).await;
//! let (ws, welcome) = app.ws_welcomed(cookies.access()).await;
//! ```

use std::{future::IntoFuture, pin::Pin};

use reqwest::{
    Method, StatusCode,
    header::{HeaderName, HeaderValue},
};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

use crate::helpers::{Ws, next_json};

pub const PASSWORD: &str = "correct horse battery";

/// Where a request's credential comes from.
#[derive(Debug, Clone)]
pub enum Credential<'a> {
    /// No credential at all (for `/ws`: the pending state).
    Anonymous,
    /// `Authorization: Bearer <token>`.
    Bearer(&'a str),
    /// A `Cookie` header, sent as given.
    Cookie(String),
}

pub use Credential::{Anonymous, Bearer};

impl<'a> From<&'a Tokens> for Credential<'a> {
    fn from(tokens: &'a Tokens) -> Self {
        Bearer(&tokens.access)
    }
}

/// Credentials from a token-mode login.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
    pub session_id: String,
    pub user_id: String,
}

impl Tokens {
    pub fn from_json(v: &Value) -> Self {
        Self {
            access: v["access_token"].as_str().expect("access_token").to_owned(),
            refresh: v["refresh_token"]
                .as_str()
                .expect("refresh_token")
                .to_owned(),
            session_id: v["session_id"].as_str().expect("session_id").to_owned(),
            user_id: v["user"]["id"].as_str().expect("user.id").to_owned(),
        }
    }

    /// The pair in a token-mode answer (login or refresh).
    pub async fn from_response(resp: reqwest::Response) -> Self {
        assert_eq!(resp.status(), StatusCode::OK, "a token pair");
        Self::from_json(&resp.json().await.expect("json"))
    }
}

/// The cookie values a browser holds after a cookie-mode login.
#[derive(Debug, Clone)]
pub struct Cookies {
    pub access: String,
    pub refresh: String,
    pub session_id: String,
}

impl Cookies {
    /// A `Cookie` header value carrying the access cookie.
    pub fn access_header(&self) -> String {
        format!("doorman_access={}", self.access)
    }

    pub fn refresh_header(&self) -> String {
        format!("doorman_refresh={}", self.refresh)
    }

    /// The access cookie, as a browser sends it on every request.
    pub fn access(&self) -> Credential<'static> {
        Credential::Cookie(self.access_header())
    }

    /// The refresh cookie alone.
    pub fn refresh(&self) -> Credential<'static> {
        Credential::Cookie(self.refresh_header())
    }

    /// Both cookies, as a browser sends them under `/api/auth`.
    pub fn both(&self) -> Credential<'static> {
        Credential::Cookie(format!(
            "{}; {}",
            self.access_header(),
            self.refresh_header()
        ))
    }
}

/// The value of cookie `name` among `Set-Cookie` lines.
pub fn cookie_value(set_cookie: &[String], name: &str) -> Option<String> {
    set_cookie.iter().find_map(|line| {
        let first = line.split(';').next()?;
        let (k, v) = first.split_once('=')?;
        (k.trim() == name).then(|| v.to_owned())
    })
}

/// A response's `Set-Cookie` lines.
pub fn set_cookie_lines(resp: &reqwest::Response) -> Vec<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii Set-Cookie").to_owned())
        .collect()
}

/// One request, ready to send: `.await` it for the response.
#[must_use = "a call does nothing until awaited"]
pub struct Call(reqwest::RequestBuilder);

impl Call {
    /// Any extra header.
    pub fn header<V>(self, name: &str, value: V) -> Self
    where
        HeaderValue: TryFrom<V>,
        <HeaderValue as TryFrom<V>>::Error: Into<tungstenite::http::Error>,
    {
        Self(self.0.header(name, value))
    }

    pub fn origin(self, origin: &str) -> Self {
        self.header("origin", origin)
    }

    /// A JSON body.
    pub fn json(self, body: &Value) -> Self {
        Self(self.0.json(body))
    }

    /// `X-Forwarded-For`, believed only from a trusted proxy.
    pub fn forwarded_for(self, ip: &str) -> Self {
        self.header("x-forwarded-for", ip)
    }

    pub async fn send(self) -> reqwest::Response {
        self.0.send().await.expect("request sent")
    }
}

impl IntoFuture for Call {
    type Output = reqwest::Response;
    type IntoFuture = Pin<Box<dyn Future<Output = reqwest::Response> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

/// A `/ws` handshake, ready to send: `.await` it for the socket or the refusal.
#[must_use = "a handshake does nothing until awaited"]
pub struct WsCall {
    url: String,
    headers: Vec<(String, String)>,
}

impl WsCall {
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn origin(self, origin: &str) -> Self {
        self.header("origin", origin)
    }

    pub fn forwarded_for(self, ip: &str) -> Self {
        self.header("x-forwarded-for", ip)
    }

    pub async fn connect(self) -> Result<Ws, tungstenite::Error> {
        let mut request = self.url.into_client_request()?;
        for (name, value) in &self.headers {
            request.headers_mut().insert(
                HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                value.parse().expect("header value"),
            );
        }
        tokio_tungstenite::connect_async(request)
            .await
            .map(|(ws, _)| ws)
    }

    /// Connects and reads the welcome, which must come.
    pub async fn welcomed(self) -> (Ws, Value) {
        let mut ws = self.connect().await.expect("handshake");
        let welcome = next_json(&mut ws).await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        (ws, welcome)
    }
}

impl IntoFuture for WsCall {
    type Output = Result<Ws, tungstenite::Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.connect())
    }
}

/// The client: a base URL and an HTTP client without a cookie store (tests set
/// cookies explicitly) that does not follow redirects.
#[derive(Clone)]
pub struct ApiClient {
    pub base: String,
    pub http: reqwest::Client,
}

impl ApiClient {
    /// A client for the server at `base` (`http://host:port`).
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            base: base.into(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client builds"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn ws_url(&self) -> String {
        let host = self.base.strip_prefix("http://").expect("an http base URL");
        format!("ws://{host}/ws")
    }

    /// The server's own origin, as a browser on it would send.
    pub fn origin(&self) -> String {
        self.base.clone()
    }

    /// Any request to `path` with `cred`.
    pub fn call<'a>(&self, method: Method, path: &str, cred: impl Into<Credential<'a>>) -> Call {
        let req = self.http.request(method, self.url(path));
        Call(match cred.into() {
            Anonymous => req,
            Bearer(token) => req.bearer_auth(token),
            Credential::Cookie(header) => req.header("cookie", header),
        })
    }

    /// A JSON `POST` to `path` with `cred`.
    pub fn post_json<'a>(&self, path: &str, cred: impl Into<Credential<'a>>, body: &Value) -> Call {
        let Call(req) = self.call(Method::POST, path, cred);
        Call(req.json(body))
    }

    // --- accounts and login -------------------------------------------------

    /// `POST /api/auth/register` with an email and a password.
    pub fn register(&self, email: &str, password: &str) -> Call {
        self.register_json(&json!({"email": email, "password": password}))
    }

    /// `POST /api/auth/register` with any JSON body.
    pub fn register_json(&self, body: &Value) -> Call {
        self.post_json("/api/auth/register", Anonymous, body)
    }

    /// `POST /api/auth/login` in token mode.
    pub fn login(&self, email: &str, password: &str) -> Call {
        self.login_json(&json!({"email": email, "password": password}))
    }

    /// `POST /api/auth/login` in cookie mode.
    pub fn login_cookie_mode(&self, email: &str, password: &str) -> Call {
        self.login_json(&json!({"email": email, "password": password, "mode": "cookie"}))
    }

    /// `POST /api/auth/login` with any JSON body.
    pub fn login_json(&self, body: &Value) -> Call {
        self.post_json("/api/auth/login", Anonymous, body)
    }

    /// Registers a fresh user (password [`PASSWORD`]) and returns its email.
    pub async fn new_user(&self) -> String {
        let email = format!("user-{}@example.org", uuid::Uuid::new_v4().simple());
        let resp = self.register(&email, PASSWORD).await;
        assert_eq!(resp.status(), StatusCode::CREATED, "register {email}");
        email
    }

    /// Logs `email` in with [`PASSWORD`] in token mode.
    pub async fn login_tokens(&self, email: &str) -> Tokens {
        Tokens::from_response(self.login(email, PASSWORD).await).await
    }

    /// Logs `email` in with [`PASSWORD`] in cookie mode.
    pub async fn login_cookies(&self, email: &str) -> Cookies {
        self.login_cookies_with(email, PASSWORD).await
    }

    /// Logs in in cookie mode and returns the cookies the browser now holds.
    pub async fn login_cookies_with(&self, email: &str, password: &str) -> Cookies {
        let resp = self.login_cookie_mode(email, password).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let set_cookie = set_cookie_lines(&resp);
        let body: Value = resp.json().await.expect("json");
        Cookies {
            access: cookie_value(&set_cookie, "doorman_access").expect("access cookie"),
            refresh: cookie_value(&set_cookie, "doorman_refresh").expect("refresh cookie"),
            session_id: body["session_id"].as_str().expect("session_id").to_owned(),
        }
    }

    /// A new user logged in with tokens.
    pub async fn user_with_tokens(&self) -> Tokens {
        let email = self.new_user().await;
        self.login_tokens(&email).await
    }

    // --- mailed links ------------------------------------------------------

    /// `POST /api/auth/verify-email/send`: mail me a verification link.
    pub fn send_verification<'a>(&self, cred: impl Into<Credential<'a>>) -> Call {
        self.call(Method::POST, "/api/auth/verify-email/send", cred)
    }

    /// `POST /api/auth/verify-email` `{token}`.
    pub fn verify_email(&self, token: &str) -> Call {
        self.post_json(
            "/api/auth/verify-email",
            Anonymous,
            &json!({"token": token}),
        )
    }

    /// `POST /api/auth/password-reset` `{email}`.
    pub fn request_reset(&self, email: &str) -> Call {
        self.post_json(
            "/api/auth/password-reset",
            Anonymous,
            &json!({"email": email}),
        )
    }

    /// `POST /api/auth/password-reset/confirm` `{token, new_password}`.
    pub fn confirm_reset(&self, token: &str, new_password: &str) -> Call {
        self.post_json(
            "/api/auth/password-reset/confirm",
            Anonymous,
            &json!({"token": token, "new_password": new_password}),
        )
    }

    // --- refresh and logout -------------------------------------------------

    /// `POST /api/auth/refresh` in token mode: `{refresh_token}` in the body.
    pub fn refresh(&self, refresh_token: &str) -> Call {
        self.refresh_json(Anonymous, &json!({"refresh_token": refresh_token}))
    }

    /// `POST /api/auth/refresh` in cookie mode: the credential (normally the refresh
    /// cookie) and an empty JSON object.
    pub fn refresh_cookie<'a>(&self, cred: impl Into<Credential<'a>>) -> Call {
        self.refresh_json(cred, &json!({}))
    }

    /// `POST /api/auth/refresh` with any JSON body.
    pub fn refresh_json<'a>(&self, cred: impl Into<Credential<'a>>, body: &Value) -> Call {
        self.post_json("/api/auth/refresh", cred, body)
    }

    /// `POST /api/auth/refresh` without any body, as `fetch` sends it.
    pub fn refresh_without_body<'a>(&self, cred: impl Into<Credential<'a>>) -> Call {
        self.call(Method::POST, "/api/auth/refresh", cred)
    }

    /// `POST /api/auth/logout`.
    pub fn logout<'a>(&self, cred: impl Into<Credential<'a>>) -> Call {
        self.call(Method::POST, "/api/auth/logout", cred)
    }

    // --- identity and sessions ----------------------------------------------

    /// `GET /api/me`.
    pub fn me<'a>(&self, cred: impl Into<Credential<'a>>) -> Call {
        self.call(Method::GET, "/api/me", cred)
    }

    /// `GET /api/sessions`.
    pub fn sessions<'a>(&self, cred: impl Into<Credential<'a>>) -> Call {
        self.call(Method::GET, "/api/sessions", cred)
    }

    /// `DELETE /api/sessions/{id}`.
    pub fn revoke_session<'a>(&self, cred: impl Into<Credential<'a>>, id: &str) -> Call {
        self.call(Method::DELETE, &format!("/api/sessions/{id}"), cred)
    }

    /// `DELETE /api/sessions`: log out everywhere.
    pub fn revoke_all_sessions<'a>(&self, cred: impl Into<Credential<'a>>) -> Call {
        self.call(Method::DELETE, "/api/sessions", cred)
    }

    /// `DELETE /api/sessions/others`: log out every other device.
    pub fn revoke_other_sessions<'a>(&self, cred: impl Into<Credential<'a>>) -> Call {
        self.call(Method::DELETE, "/api/sessions/others", cred)
    }

    /// The `live_sockets` of session `id` in `GET /api/sessions`, as `cred` sees it.
    pub async fn live_sockets<'a>(&self, cred: impl Into<Credential<'a>>, id: &str) -> u64 {
        let resp = self.sessions(cred).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let list: Value = resp.json().await.expect("json");
        let entry = list
            .as_array()
            .expect("a session list")
            .iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("session {id} listed in {list}"));
        entry["live_sockets"]
            .as_u64()
            .unwrap_or_else(|| panic!("live_sockets is an integer in {entry}"))
    }

    /// `POST /api/me/password`.
    pub fn change_password<'a>(
        &self,
        cred: impl Into<Credential<'a>>,
        current: &str,
        new: &str,
    ) -> Call {
        self.post_json(
            "/api/me/password",
            cred,
            &json!({"current_password": current, "new_password": new}),
        )
    }

    /// `GET /api/me/activity`.
    pub fn activity<'a>(&self, cred: impl Into<Credential<'a>>) -> Call {
        self.call(Method::GET, "/api/me/activity", cred)
    }

    // --- rooms --------------------------------------------------------------

    /// `POST /api/rooms/{room}/messages` with `{body}`.
    pub fn publish<'a>(&self, cred: impl Into<Credential<'a>>, room: &str, body: &str) -> Call {
        self.publish_json(cred, room, &json!({ "body": body }))
    }

    /// `POST /api/rooms` with `{name}`: claims a private room.
    pub fn create_room<'a>(&self, cred: impl Into<Credential<'a>>, name: &str) -> Call {
        self.post_json("/api/rooms", cred, &json!({ "name": name }))
    }

    /// `GET /api/rooms`: the private rooms the caller owns or belongs to.
    pub fn rooms<'a>(&self, cred: impl Into<Credential<'a>>) -> Call {
        self.call(Method::GET, "/api/rooms", cred)
    }

    /// `DELETE /api/rooms/{room}`.
    pub fn delete_room<'a>(&self, cred: impl Into<Credential<'a>>, room: &str) -> Call {
        self.call(Method::DELETE, &format!("/api/rooms/{room}"), cred)
    }

    /// `GET /api/rooms/{room}/members`.
    pub fn members<'a>(&self, cred: impl Into<Credential<'a>>, room: &str) -> Call {
        self.call(Method::GET, &format!("/api/rooms/{room}/members"), cred)
    }

    /// `PUT /api/rooms/{room}/members/{user_id}`.
    pub fn add_member<'a>(&self, cred: impl Into<Credential<'a>>, room: &str, user: &str) -> Call {
        self.call(
            Method::PUT,
            &format!("/api/rooms/{room}/members/{user}"),
            cred,
        )
    }

    /// `DELETE /api/rooms/{room}/members/{user_id}`.
    pub fn remove_member<'a>(
        &self,
        cred: impl Into<Credential<'a>>,
        room: &str,
        user: &str,
    ) -> Call {
        self.call(
            Method::DELETE,
            &format!("/api/rooms/{room}/members/{user}"),
            cred,
        )
    }

    /// `GET /api/rooms/{room}/presence`.
    pub fn presence<'a>(&self, cred: impl Into<Credential<'a>>, room: &str) -> Call {
        self.call(Method::GET, &format!("/api/rooms/{room}/presence"), cred)
    }

    /// The user ids `GET /api/rooms/{room}/presence` lists, sorted.
    pub async fn present_users<'a>(
        &self,
        cred: impl Into<Credential<'a>>,
        room: &str,
    ) -> Vec<String> {
        let resp = self.presence(cred, room).await;
        assert_eq!(resp.status(), StatusCode::OK, "presence of {room}");
        let body: Value = resp.json().await.expect("json");
        assert_eq!(body["room"], room, "{body}");
        let mut users: Vec<String> = body["users"]
            .as_array()
            .unwrap_or_else(|| panic!("users in {body}"))
            .iter()
            .map(|u| u["user_id"].as_str().expect("user_id").to_owned())
            .collect();
        users.sort();
        users
    }

    /// Claims private room `name` as `owner` (201) and adds each of `members` (204).
    pub async fn private_room(&self, owner: &Tokens, name: &str, members: &[&Tokens]) {
        let resp = self.create_room(owner, name).await;
        assert_eq!(resp.status(), StatusCode::CREATED, "create {name}");
        for m in members {
            let resp = self.add_member(owner, name, &m.user_id).await;
            assert_eq!(resp.status(), StatusCode::NO_CONTENT, "add to {name}");
        }
    }

    /// `POST /api/rooms/{room}/messages` with any JSON body.
    pub fn publish_json<'a>(
        &self,
        cred: impl Into<Credential<'a>>,
        room: &str,
        body: &Value,
    ) -> Call {
        self.post_json(&format!("/api/rooms/{room}/messages"), cred, body)
    }

    // --- administration -----------------------------------------------------

    /// `GET /api/admin/users?query=&cursor=&limit=` (each only when given).
    pub fn admin_users<'a>(
        &self,
        cred: impl Into<Credential<'a>>,
        query: Option<&str>,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Call {
        let Call(req) = self.call(Method::GET, "/api/admin/users", cred);
        let mut params: Vec<(&str, String)> = Vec::new();
        if let Some(q) = query {
            params.push(("query", q.to_owned()));
        }
        if let Some(c) = cursor {
            params.push(("cursor", c.to_owned()));
        }
        if let Some(l) = limit {
            params.push(("limit", l.to_string()));
        }
        Call(req.query(&params))
    }

    /// `GET /api/admin/users/{id}`.
    pub fn admin_user<'a>(&self, cred: impl Into<Credential<'a>>, id: &str) -> Call {
        self.call(Method::GET, &format!("/api/admin/users/{id}"), cred)
    }

    /// `DELETE /api/admin/users/{id}/sessions/{sid}`.
    pub fn admin_revoke_session<'a>(
        &self,
        cred: impl Into<Credential<'a>>,
        id: &str,
        sid: &str,
    ) -> Call {
        self.call(
            Method::DELETE,
            &format!("/api/admin/users/{id}/sessions/{sid}"),
            cred,
        )
    }

    /// `DELETE /api/admin/users/{id}/sessions`.
    pub fn admin_revoke_sessions<'a>(&self, cred: impl Into<Credential<'a>>, id: &str) -> Call {
        self.call(
            Method::DELETE,
            &format!("/api/admin/users/{id}/sessions"),
            cred,
        )
    }

    /// `PUT /api/admin/users/{id}/block` `{reason}`.
    pub fn admin_block<'a>(&self, cred: impl Into<Credential<'a>>, id: &str, reason: &str) -> Call {
        let Call(req) = self.call(Method::PUT, &format!("/api/admin/users/{id}/block"), cred);
        Call(req.json(&json!({ "reason": reason })))
    }

    /// `DELETE /api/admin/users/{id}/block`.
    pub fn admin_unblock<'a>(&self, cred: impl Into<Credential<'a>>, id: &str) -> Call {
        self.call(
            Method::DELETE,
            &format!("/api/admin/users/{id}/block"),
            cred,
        )
    }

    /// `DELETE /api/admin/users/{id}`.
    pub fn admin_delete_user<'a>(&self, cred: impl Into<Credential<'a>>, id: &str) -> Call {
        self.call(Method::DELETE, &format!("/api/admin/users/{id}"), cred)
    }

    /// `GET /api/admin/audit?cursor=&limit=`.
    pub fn admin_audit<'a>(
        &self,
        cred: impl Into<Credential<'a>>,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Call {
        let Call(req) = self.call(Method::GET, "/api/admin/audit", cred);
        let mut params: Vec<(&str, String)> = Vec::new();
        if let Some(c) = cursor {
            params.push(("cursor", c.to_owned()));
        }
        if let Some(l) = limit {
            params.push(("limit", l.to_string()));
        }
        Call(req.query(&params))
    }

    // --- public endpoints ---------------------------------------------------

    pub fn healthz(&self) -> Call {
        self.get("/healthz")
    }

    pub fn readyz(&self) -> Call {
        self.get("/readyz")
    }

    /// `GET /.well-known/jwks.json`, parsed.
    pub async fn jwks(&self) -> Value {
        let resp = self.get("/.well-known/jwks.json").await;
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json().await.expect("json")
    }

    /// An anonymous GET of any path (pages, the spec, unknown routes).
    pub fn get(&self, path: &str) -> Call {
        self.call(Method::GET, path, Anonymous)
    }

    // --- WebSocket ----------------------------------------------------------

    /// A `/ws` handshake with a credential in a header (`Anonymous`: the pending
    /// state, which must send an `auth` frame).
    pub fn ws<'a>(&self, cred: impl Into<Credential<'a>>) -> WsCall {
        self.ws_at("/ws", cred)
    }

    /// A WebSocket handshake to `path` (a host app's own socket route).
    pub fn ws_at<'a>(&self, path: &str, cred: impl Into<Credential<'a>>) -> WsCall {
        let call = WsCall {
            url: self.ws_url().replacen("/ws", path, 1),
            headers: Vec::new(),
        };
        match cred.into() {
            Anonymous => call,
            Bearer(token) => call.header("authorization", &format!("Bearer {token}")),
            Credential::Cookie(header) => call.header("cookie", &header),
        }
    }

    /// Opens `/ws` with a credential and reads the welcome.
    pub async fn ws_welcomed<'a>(&self, cred: impl Into<Credential<'a>>) -> (Ws, Value) {
        self.ws(cred).welcomed().await
    }
}
