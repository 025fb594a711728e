//! Arbitrary `Authorization` and `Cookie` header bytes through the credential parser:
//! it must never panic, and what it returns must really be in the headers.
#![no_main]

use doorman::auth::{Presented, credential_in_headers};
use libfuzzer_sys::fuzz_target;
use poem::http::{HeaderMap, HeaderValue, header};

fuzz_target!(|data: &[u8]| {
    // Split the input into header values at 0xFF bytes: the first is Authorization
    // (absent when empty), the rest are Cookie headers.
    let mut parts = data.split(|b| *b == 0xFF);
    let mut headers = HeaderMap::new();
    if let Some(auth) = parts.next()
        && !auth.is_empty()
        && let Ok(v) = HeaderValue::from_bytes(auth)
    {
        headers.append(header::AUTHORIZATION, v);
    }
    for cookie in parts {
        if let Ok(v) = HeaderValue::from_bytes(cookie) {
            headers.append(header::COOKIE, v);
        }
    }
    match credential_in_headers(&headers, "doorman_access") {
        Ok(Some(Presented::Bearer(token))) => {
            assert!(!token.is_empty() && !token.contains(' '));
            let auth = headers.get(header::AUTHORIZATION).unwrap().to_str().unwrap();
            assert!(auth.contains(token));
        }
        Ok(Some(Presented::Cookie(value))) => {
            assert!(!value.is_empty());
            let value = value.as_bytes();
            assert!(headers.get_all(header::COOKIE).iter().any(|h| {
                h.as_bytes().windows(value.len()).any(|w| w == value)
            }));
        }
        Ok(None) | Err(_) => {}
    }
});
