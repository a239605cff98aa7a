//! What a request presents as its credential, classified without storage.
//!
//! Accepted forms: `Authorization: Bearer <credential>` or
//! `X-Api-Key: <credential>` (both may be sent only when they carry the same
//! value). The credential's shape says its kind: `cvg_…` an API key, `cvs_…`
//! a channel secret, three dot-separated parts a client token (JWT). Anything
//! else is refused before any lookup.

use super::keys::{API_KEY_PREFIX, CHANNEL_SECRET_PREFIX};
use super::AuthError;

/// A credential as sent, by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential<'a> {
    ApiKey(&'a str),
    ChannelSecret(&'a str),
    Token(&'a str),
}

/// The credential from the `Authorization` and `X-Api-Key` header values.
pub fn presented<'a>(authorization: Option<&'a str>, x_api_key: Option<&'a str>) -> Result<Credential<'a>, AuthError> {
    let bearer = match authorization.map(str::trim).filter(|v| !v.is_empty()) {
        Some(value) => Some(bearer(value)?),
        None => None,
    };
    let key = x_api_key.map(str::trim).filter(|v| !v.is_empty());
    let value = match (bearer, key) {
        (Some(a), Some(b)) if a != b => return Err(AuthError::Invalid("Authorization and X-Api-Key disagree")),
        (Some(v), _) | (None, Some(v)) => v,
        (None, None) => return Err(AuthError::Missing),
    };
    classify(value)
}

/// `Bearer <credential>` (scheme case-insensitive) → the credential.
fn bearer(value: &str) -> Result<&str, AuthError> {
    match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") && !rest.trim().is_empty() => Ok(rest.trim()),
        _ => Err(AuthError::Invalid("the Authorization header must be `Bearer <credential>`")),
    }
}

fn classify(value: &str) -> Result<Credential<'_>, AuthError> {
    if value.starts_with(API_KEY_PREFIX) {
        Ok(Credential::ApiKey(value))
    } else if value.starts_with(CHANNEL_SECRET_PREFIX) {
        Ok(Credential::ChannelSecret(value))
    } else if value.split('.').count() == 3 {
        Ok(Credential::Token(value))
    } else {
        Err(AuthError::Invalid("not an API key, channel secret or client token"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_or_x_api_key_and_the_kind_from_the_shape() {
        assert_eq!(presented(Some("Bearer cvg_abc"), None).expect("ok"), Credential::ApiKey("cvg_abc"));
        assert_eq!(presented(Some("bearer  cvs_abc "), None).expect("ok"), Credential::ChannelSecret("cvs_abc"));
        assert_eq!(presented(None, Some("cvg_abc")).expect("ok"), Credential::ApiKey("cvg_abc"));
        assert_eq!(presented(Some("Bearer a.b.c"), None).expect("ok"), Credential::Token("a.b.c"));
        assert_eq!(presented(Some("Bearer cvg_x"), Some("cvg_x")).expect("same"), Credential::ApiKey("cvg_x"));
    }

    #[test]
    fn missing_malformed_and_conflicting_credentials_are_refused() {
        assert!(matches!(presented(None, None), Err(AuthError::Missing)));
        assert!(matches!(presented(Some(""), Some(" ")), Err(AuthError::Missing)));
        assert!(matches!(presented(Some("Basic dXNlcjpwYXNz"), None), Err(AuthError::Invalid(_))));
        assert!(matches!(presented(Some("Bearer"), None), Err(AuthError::Invalid(_))));
        assert!(matches!(presented(Some("Bearer hunter2"), None), Err(AuthError::Invalid(_))));
        assert!(matches!(presented(Some("Bearer cvg_a"), Some("cvg_b")), Err(AuthError::Invalid(_))));
    }
}
