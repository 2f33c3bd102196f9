//! The names enrollment checks and the names it gives: the device's namespace and name,
//! its labels, and the ServiceAccount, Roles and bindings derived from them.

use sha2::{Digest, Sha256};

use super::Error;

/// The longest ServiceAccount name enrollment gives (a DNS label's length, so the name
/// also fits label values such as [`ENROLLED_LABEL`](super::ENROLLED_LABEL)).
pub const MAX_SERVICE_ACCOUNT_NAME: usize = 63;
/// Hex digits of the hash that ends a shortened ServiceAccount name.
const HASH_DIGITS: usize = 10;

/// Whether `s` is a DNS-1123 label: 1–63 lower-case letters, digits or `-`, starting and
/// ending with a letter or digit (what namespaces must be).
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Whether `s` is a DNS-1123 subdomain: at most 253 characters, DNS labels joined by
/// dots (what most object names, ManagedDevices' among them, must be).
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Checks a namespace name (`what` names the flag it came from).
pub fn check_namespace(what: &'static str, value: &str) -> Result<(), Error> {
    if is_dns_label(value) {
        Ok(())
    } else {
        Err(Error::InvalidName {
            what,
            value: value.to_string(),
            rule: "a DNS label: 1-63 lower-case letters, digits or '-', starting and ending with a letter or digit",
        })
    }
}

/// Checks a ManagedDevice name.
pub fn check_device_name(value: &str) -> Result<(), Error> {
    if is_dns_subdomain(value) {
        Ok(())
    } else {
        Err(Error::InvalidName {
            what: "--name",
            value: value.to_string(),
            rule: "a DNS subdomain: at most 253 characters, lower-case letters, digits, '-' and '.', \
                   each dot-separated part starting and ending with a letter or digit",
        })
    }
}

/// Whether `s` is a label value, or the name part of a label key when `empty_ok` is
/// false: at most 63 characters, letters, digits, `-`, `_` and `.`, starting and ending
/// with a letter or digit.
fn is_label_name(s: &str, empty_ok: bool) -> bool {
    if s.is_empty() {
        return empty_ok;
    }
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && edge(s.chars().next())
        && edge(s.chars().last())
}

/// Checks one `--label KEY=VALUE` as the API server would: the key an optional DNS
/// subdomain prefix and `/` then a name, the value empty or a name.
pub fn check_label(key: &str, value: &str) -> Result<(), Error> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let invalid = |why: &'static str| Error::InvalidLabel {
        label: format!("{key}={value}"),
        why,
    };
    if prefix.is_some_and(|p| !is_dns_subdomain(p)) {
        return Err(invalid(
            "the key's prefix (before '/') must be a DNS subdomain",
        ));
    }
    if !is_label_name(name, false) {
        return Err(invalid(
            "the key's name must be 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
        ));
    }
    if !is_label_name(value, true) {
        return Err(invalid(
            "the value must be empty or at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
        ));
    }
    Ok(())
}

/// The ServiceAccount of the agent of device `name` in `namespace`: `<namespace>.<name>`
/// when that fits in 63 characters, else its first characters, `-` and the first 10 hex
/// digits of SHA-256 over `<namespace>/<name>`, 63 characters in all.
///
/// Distinct devices get distinct names: a namespace holds no dot, so `<namespace>.<name>`
/// names one device; a shortened name ends with a hash of the whole (a clash needs two
/// 40-bit hashes to agree). The result is a DNS-1123 subdomain for valid inputs.
pub fn service_account_name(namespace: &str, name: &str) -> String {
    let full = format!("{namespace}.{name}");
    if full.len() <= MAX_SERVICE_ACCOUNT_NAME {
        return full;
    }
    let digest = format!(
        "{:x}",
        Sha256::digest(format!("{namespace}/{name}").as_bytes())
    );
    let hash = digest.get(..HASH_DIGITS).unwrap_or(&digest);
    let keep = MAX_SERVICE_ACCOUNT_NAME - HASH_DIGITS - 1;
    // The input is ASCII (checked names), so byte slicing is on a char boundary; a cut
    // that ends a part with '.' or '-' would not be a valid name: trim it.
    let head = full.get(..keep).unwrap_or(&full);
    let head = head.trim_end_matches(['.', '-']);
    format!("{head}-{hash}")
}

/// The Role and RoleBinding in the device's namespace giving its agent its device.
pub fn device_role_name(device: &str) -> String {
    format!("ringmaster-agent:{device}")
}

/// The Role and RoleBinding in the agents' namespace letting an agent renew its token.
pub fn token_role_name(service_account: &str) -> String {
    format!("ringmaster-agent-token:{service_account}")
}

/// The ClusterRole, shared by every agent, reading the Patch catalog.
pub const CATALOG_CLUSTER_ROLE: &str = "ringmaster:agent-catalog-reader";

/// The ClusterRoleBinding of [`CATALOG_CLUSTER_ROLE`] to the agents of one namespace.
pub fn catalog_binding_name(agents_namespace: &str) -> String {
    format!("{CATALOG_CLUSTER_ROLE}:{agents_namespace}")
}

/// The user name of ServiceAccount `name` in `namespace`, as the API server sees it.
pub fn service_account_user(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// The group every ServiceAccount of `namespace` is in.
pub fn service_accounts_group(namespace: &str) -> String {
    format!("system:serviceaccounts:{namespace}")
}

/// The namespace and name of a ServiceAccount from its user name
/// (`system:serviceaccount:<namespace>:<name>`), if it is one.
pub fn parse_service_account_user(user: &str) -> Option<(&str, &str)> {
    let rest = user.strip_prefix("system:serviceaccount:")?;
    let (namespace, name) = rest.split_once(':')?;
    (is_dns_label(namespace) && is_dns_subdomain(name)).then_some((namespace, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_namespace_dot_name() {
        assert_eq!(service_account_name("fleet", "web-1"), "fleet.web-1");
        assert_eq!(
            service_account_name("fleet", "db.eu-west.example"),
            "fleet.db.eu-west.example"
        );
    }

    #[test]
    fn long_names_are_cut_to_63_with_a_hash_and_stay_valid_and_distinct() {
        let ns = "customer-with-a-rather-long-namespace-name";
        let a = service_account_name(ns, "laptop-0001.branch-office.example.com");
        let b = service_account_name(ns, "laptop-0002.branch-office.example.com");
        assert_eq!(a.len(), 63, "{a}");
        assert_eq!(b.len(), 63, "{b}");
        assert_ne!(a, b);
        assert!(is_dns_subdomain(&a), "{a}");
        assert!(a.starts_with("customer-with-a-rather-long-namespace-name.laptop"));
        // The same device always gets the same name.
        assert_eq!(
            a,
            service_account_name(ns, "laptop-0001.branch-office.example.com")
        );
    }

    #[test]
    fn a_cut_that_ends_a_part_with_a_dot_or_dash_is_trimmed() {
        // 52 characters are kept: "<40 a's>.<10 b's>-" would end with '-' before the
        // hash, "<40 a's>.<10 b's>." with '.'.
        let ns = "a".repeat(40);
        for sep in ['-', '.'] {
            let name = format!("{}{sep}{}", "b".repeat(10), "c".repeat(30));
            let sa = service_account_name(&ns, &name);
            assert!(is_dns_subdomain(&sa), "{sa}");
            assert!(sa.starts_with(&format!("{ns}.{}-", "b".repeat(10))), "{sa}");
            assert_eq!(sa.len(), 62, "{sa}");
        }
    }

    #[test]
    fn exactly_63_characters_are_kept_whole() {
        let ns = "n".repeat(20);
        let name = "d".repeat(42);
        assert_eq!(service_account_name(&ns, &name), format!("{ns}.{name}"));
        let longer = "d".repeat(43);
        assert_ne!(service_account_name(&ns, &longer), format!("{ns}.{longer}"));
    }

    #[test]
    fn names_and_labels_are_checked() {
        assert!(check_namespace("--namespace", "fleet").is_ok());
        for bad in ["", "Fleet", "fleet.a", "-fleet", &"x".repeat(64)] {
            assert!(check_namespace("--namespace", bad).is_err(), "{bad:?}");
        }
        assert!(check_device_name("web-1.example.com").is_ok());
        for bad in ["", "Web", "web..1", "web_1", "web-"] {
            assert!(check_device_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_label("ring", "canary").is_ok());
        assert!(check_label("example.com/tier", "").is_ok());
        assert!(check_label("class", "Work_Station.2").is_ok());
        for (k, v) in [
            ("", "x"),
            ("a b", "x"),
            ("Example.com/x", "y"),
            ("x", "-y"),
            ("x", "a/b"),
        ] {
            assert!(check_label(k, v).is_err(), "{k}={v}");
        }
    }

    #[test]
    fn service_account_users_round_trip() {
        let user = service_account_user("ringmaster-agents", "fleet.web-1");
        assert_eq!(user, "system:serviceaccount:ringmaster-agents:fleet.web-1");
        assert_eq!(
            parse_service_account_user(&user),
            Some(("ringmaster-agents", "fleet.web-1"))
        );
        assert_eq!(parse_service_account_user("system:admin"), None);
        assert_eq!(parse_service_account_user("system:serviceaccount:x"), None);
    }
}
