//! Masks the password in a PostgreSQL connection string before it is logged
//! or shown in an error. Handles both forms libpq accepts: URLs
//! (`postgres://user:pw@host/db?password=pw`) and key=value strings
//! (`host=h password=pw`).

/// `url` with every password replaced by `***`.
pub fn mask_database_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let (authority, tail) = rest.split_at(end);
            let authority = match authority.rsplit_once('@') {
                Some((userinfo, host)) => match userinfo.split_once(':') {
                    Some((user, _)) => format!("{user}:***@{host}"),
                    None => authority.to_string(),
                },
                None => authority.to_string(),
            };
            format!("{scheme}://{authority}{}", mask_password_params(tail))
        }
        None => mask_password_params(url),
    }
}

/// Replaces the value of every `password=` parameter (query or key=value form).
fn mask_password_params(s: &str) -> String {
    const KEY: &str = "password=";
    let lower = s.to_ascii_lowercase();
    let mut out = String::with_capacity(s.len());
    let mut pos = 0;
    while let Some(found) = lower[pos..].find(KEY) {
        let value_start = pos + found + KEY.len();
        out.push_str(&s[pos..value_start]);
        let rest = &s[value_start..];
        let value_len = if let Some(quoted) = rest.strip_prefix('\'') {
            quoted.find('\'').map(|i| i + 2).unwrap_or(rest.len())
        } else {
            rest.find(['&', '#', ' ', '\t']).unwrap_or(rest.len())
        };
        out.push_str("***");
        pos = value_start + value_len;
    }
    out.push_str(&s[pos..]);
    out
}

#[cfg(test)]
mod tests {
    use super::mask_database_url as mask;

    #[test]
    fn masks_url_userinfo_password() {
        assert_eq!(mask("postgres://app:s3cret@db:5432/conv"), "postgres://app:***@db:5432/conv");
        assert_eq!(mask("postgresql://a:p%40ss@h/d?sslmode=disable"), "postgresql://a:***@h/d?sslmode=disable");
    }

    #[test]
    fn keeps_urls_without_password() {
        assert_eq!(mask("postgres://app@db/conv"), "postgres://app@db/conv");
        assert_eq!(mask("postgres://db/conv"), "postgres://db/conv");
    }

    #[test]
    fn masks_password_parameters() {
        assert_eq!(
            mask("postgres://h/d?user=u&password=x&sslmode=require"),
            "postgres://h/d?user=u&password=***&sslmode=require"
        );
        assert_eq!(mask("host=h password=pw user=u"), "host=h password=*** user=u");
        assert_eq!(mask("host=h password='p w' user=u"), "host=h password=*** user=u");
    }
}
