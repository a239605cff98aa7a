//! The admin console: one HTML page, its script and its style sheet,
//! compiled into the binary (`cargo run` needs no Node, there is no build
//! step). The console holds no data: everything it shows comes from the
//! admin JSON API (`/admin/api/…`), called by the page with the admin token
//! the operator typed in. The admin gate (`api::App::handle`) runs before any
//! of this: only allow-listed addresses reach these files.
//!
//! Every answer carries a strict Content-Security-Policy: scripts and styles
//! from this origin only (no inline script or style, no `eval`), no frames,
//! no forms posting elsewhere; tenants' text is put in the page with DOM
//! text APIs by `app.js`, never as HTML.

use crate::net::http::Response;

/// The console's policy: nothing but its own files and its own API.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const INDEX: &str = include_str!("assets/index.html");

/// The compiled-in assets by file name, with their content types.
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.js", "text/javascript; charset=utf-8", include_str!("assets/app.js")),
    ("app.css", "text/css; charset=utf-8", include_str!("assets/app.css")),
];

/// `GET /admin` and `/admin/`: the page (never cached: it is the entry point).
pub fn page() -> Response {
    strict(Response::text(200, "text/html; charset=utf-8", INDEX.to_string())).with_header("cache-control", "no-store")
}

/// `GET /admin/assets/{file}`, or `None` for a file the console does not have.
pub fn asset(file: &str) -> Option<Response> {
    let (_, content_type, body) = ASSETS.iter().find(|(name, _, _)| *name == file)?;
    Some(strict(Response::text(200, content_type, body.to_string())).with_header("cache-control", "no-cache"))
}

fn strict(response: Response) -> Response {
    response
        .with_header("content-security-policy", CSP)
        .with_header("x-content-type-options", "nosniff")
        .with_header("referrer-policy", "no-referrer")
        .with_header("x-frame-options", "DENY")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_files_that_exist_and_no_inline_code() {
        for name in ["app.js", "app.css"] {
            assert!(INDEX.contains(&format!("/admin/assets/{name}")), "{name}");
            assert!(asset(name).is_some(), "{name}");
        }
        assert!(asset("../mod.rs").is_none());
        // No inline script or style: the CSP would refuse them anyway.
        assert!(!INDEX.contains("<script>") && !INDEX.contains("style=") && !INDEX.contains("<style"));
        assert!(!CSP.contains("unsafe"));
    }

    #[test]
    fn tenants_text_is_never_written_as_html() {
        let (_, _, js) = ASSETS[0];
        for banned in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("] {
            assert!(!js.contains(banned), "app.js uses {banned}");
        }
    }
}
