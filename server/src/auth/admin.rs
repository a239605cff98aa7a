//! The admin gate: a client address inside the allow-list for every path
//! under `/admin` ([`is_admin_path`]), **and** `Authorization: Bearer <admin
//! token>` for every path under `/admin/api` ([`is_admin_api_path`]), both
//! before the path is routed. The console's static pages (`/admin`,
//! `/admin/assets/…`) hold no data, so they need the address only: the token
//! is typed into the page and sent by its API calls.
//!
//! The address is checked first, so a caller outside the list learns nothing:
//! not whether the token was right, not whether the admin API is on, not
//! which admin routes exist (every path under `/admin` answers the same 403).
//! The address is the TCP peer: `X-Forwarded-For` is not trusted; behind a
//! proxy, allow the proxy. With no admin token configured the admin API is
//! off and an allowed address gets 404 `admin_disabled`.

use std::net::IpAddr;

use sha2::{Digest, Sha256};

use super::{ct, AllowList, AuthError};

/// Whether `path` is behind the admin gate: `/admin` and everything under it.
pub fn is_admin_path(path: &str) -> bool {
    path.strip_prefix("/admin").is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Whether `path` also needs the admin token: `/admin/api` and under it.
pub fn is_admin_api_path(path: &str) -> bool {
    path.strip_prefix("/admin/api").is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Lets the request through when `peer` is in the allow-list.
pub fn check_address(allow: &AllowList, peer: Option<IpAddr>) -> Result<(), AuthError> {
    // No peer address only happens for requests built in unit tests: refuse.
    if peer.is_some_and(|ip| allow.allows(ip)) {
        Ok(())
    } else {
        Err(AuthError::AdminAddressRefused)
    }
}

/// Lets the request through when `peer` is allowed, the admin API is on and
/// `authorization` carries the admin token.
pub fn check(
    token: Option<&str>,
    allow: &AllowList,
    peer: Option<IpAddr>,
    authorization: Option<&str>,
) -> Result<(), AuthError> {
    check_address(allow, peer)?;
    let token = token.ok_or(AuthError::AdminDisabled)?;
    let presented = match authorization.map(str::trim) {
        None | Some("") => return Err(AuthError::Missing),
        Some(value) => match value.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
            _ => return Err(AuthError::Invalid("the Authorization header must be `Bearer <admin token>`")),
        },
    };
    // Hashing both first makes the comparison's length fixed: the time taken
    // says nothing about the configured token's length either.
    if ct::eq(&Sha256::digest(presented.as_bytes()), &Sha256::digest(token.as_bytes())) {
        Ok(())
    } else {
        Err(AuthError::Invalid("wrong admin token"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    #[test]
    fn needs_the_token_and_an_allowed_address() {
        let token = "tok";
        let allow: AllowList = "127.0.0.0/8".parse().expect("cidr");
        let check = |peer, auth| check(Some(token), &allow, peer, auth);
        assert!(check(ip("127.0.0.1"), Some("Bearer tok")).is_ok());
        assert!(matches!(check(ip("10.0.0.1"), Some("Bearer tok")), Err(AuthError::AdminAddressRefused)));
        assert!(matches!(check(None, Some("Bearer tok")), Err(AuthError::AdminAddressRefused)));
        assert!(matches!(check(ip("127.0.0.1"), None), Err(AuthError::Missing)));
        assert!(matches!(check(ip("127.0.0.1"), Some("Bearer tok2")), Err(AuthError::Invalid(_))));
        assert!(matches!(check(ip("127.0.0.1"), Some("tok")), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn the_token_is_for_the_api_paths_and_the_address_for_all() {
        assert!(is_admin_path("/admin") && is_admin_path("/admin/assets/app.js"));
        assert!(is_admin_api_path("/admin/api") && is_admin_api_path("/admin/api/stats"));
        for path in ["/admin", "/admin/", "/admin/assets/app.js", "/admin/apix", "/administrator"] {
            assert!(!is_admin_api_path(path), "{path}");
        }
        let allow: AllowList = "127.0.0.0/8".parse().expect("cidr");
        assert!(check_address(&allow, ip("127.0.0.1")).is_ok());
        assert!(matches!(check_address(&allow, ip("10.0.0.1")), Err(AuthError::AdminAddressRefused)));
        assert!(matches!(check_address(&allow, None), Err(AuthError::AdminAddressRefused)));
    }

    #[test]
    fn no_configured_token_disables_the_admin_api_but_only_an_allowed_address_learns_it() {
        let allow: AllowList = "127.0.0.0/8".parse().expect("cidr");
        assert!(matches!(check(None, &allow, ip("127.0.0.1"), Some("Bearer x")), Err(AuthError::AdminDisabled)));
        assert!(matches!(check(None, &allow, ip("10.0.0.1"), None), Err(AuthError::AdminAddressRefused)));
    }

    #[test]
    fn the_gate_covers_admin_and_everything_under_it_only() {
        for path in ["/admin", "/admin/", "/admin/api", "/admin/api/tenants", "/admin/api/anything/else", "/admin//x"] {
            assert!(is_admin_path(path), "{path}");
        }
        for path in ["/", "/administrator", "/adminx/api", "/api/v1/admin", "/health", "/Admin/api/tenants"] {
            assert!(!is_admin_path(path), "{path}");
        }
    }
}
