//! `Filter.N` matching and `MaxResults`/`NextToken` paging for the Describe
//! actions, applied by the server on top of what the model returns.

use std::collections::BTreeMap;

use vpc_cni_cloud::sim::{Eni, EniFilter, Instance, Subnet, Vpc};

use super::api_error::ApiError;

/// Marks our page tokens so a foreign or mangled one is refused.
const TOKEN_PREFIX: &str = "vpcsim1.";

/// EC2 filter values accept `*` (any run) and `?` (one character).
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was and how much text it has swallowed so far.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi.min(p.len())..].iter().all(|&c| c == '*')
}

fn any(values: &[String], text: &str) -> bool {
    values.iter().any(|v| glob(v, text))
}

fn tags_match(name: &str, values: &[String], tags: &BTreeMap<String, String>) -> Option<bool> {
    if name == "tag-key" {
        return Some(tags.keys().any(|k| any(values, k)));
    }
    if name == "tag-value" {
        return Some(tags.values().any(|v| any(values, v)));
    }
    let key = name.strip_prefix("tag:")?;
    Some(tags.get(key).is_some_and(|v| any(values, v)))
}

fn unknown(name: &str) -> ApiError {
    ApiError::new(
        "InvalidParameterValue",
        format!("The filter '{name}' is invalid"),
    )
}

/// Whether `eni` passes one filter; an unknown filter name is an error.
pub fn eni_matches(eni: &Eni, name: &str, values: &[String]) -> Result<bool, ApiError> {
    if let Some(hit) = tags_match(name, values, &eni.tags) {
        return Ok(hit);
    }
    let att = eni.attachment.as_ref();
    let one = |text: &str| any(values, text);
    Ok(match name {
        "network-interface-id" => one(&eni.id),
        "attachment.instance-id" => att.is_some_and(|a| one(&a.instance_id)),
        "attachment.attachment-id" => att.is_some_and(|a| one(&a.id)),
        "attachment.status" => att.is_some_and(|a| one(&a.status)),
        "attachment.device-index" => att.is_some_and(|a| one(&a.device_index.to_string())),
        "attachment.delete-on-termination" => {
            att.is_some_and(|a| one(&a.delete_on_termination.to_string()))
        }
        "status" => one(&eni.status),
        "vpc-id" => one(&eni.vpc_id),
        "subnet-id" => one(&eni.subnet_id),
        "availability-zone" => one(&eni.availability_zone),
        "description" => one(&eni.description),
        "mac-address" => one(&eni.mac),
        "group-id" => eni.security_groups.iter().any(|g| one(g)),
        "requester-managed" => one(&eni.requester_managed.to_string()),
        "owner-id" => one(super::ACCOUNT_ID),
        "interface-type" => one("interface"),
        "private-ip-address" | "addresses.private-ip-address" => {
            eni.private_ips.iter().any(|p| one(&p.address.to_string()))
        }
        "ipv4-prefix" | "ipv4-prefixes.ipv4-prefix" => eni.prefixes.iter().any(|p| one(p)),
        _ => return Err(unknown(name)),
    })
}

/// Narrows the model's own filter with what it can express exactly, so its
/// pagination counts only matching ENIs; `eni_matches` still checks all.
pub fn narrow(filter: &mut EniFilter, name: &str, values: &[String]) {
    let exact = values.len() == 1 && !values[0].contains(['*', '?']);
    let single = || values.first().cloned();
    match name {
        "tag-key" if values.iter().all(|v| !v.contains(['*', '?'])) => {
            filter.tag_keys.extend(values.iter().cloned());
        }
        n if n.starts_with("tag:") => {
            filter
                .tags
                .push((n["tag:".len()..].to_string(), values.to_vec()));
        }
        "attachment.instance-id" if exact => filter.attachment_instance_id = single(),
        "status" if exact => filter.status = single(),
        "vpc-id" if exact => filter.vpc_id = single(),
        "subnet-id" if exact => filter.subnet_id = single(),
        "description" if values.len() == 1 => filter.description = single(),
        _ => {}
    }
}

pub fn instance_matches(inst: &Instance, name: &str, values: &[String]) -> Result<bool, ApiError> {
    if let Some(hit) = tags_match(name, values, &inst.tags) {
        return Ok(hit);
    }
    let one = |text: &str| any(values, text);
    Ok(match name {
        "instance-id" => one(&inst.id),
        "instance-state-name" => one(&inst.state),
        "instance-type" => one(&inst.instance_type),
        "vpc-id" => one(&inst.vpc_id),
        "subnet-id" => one(&inst.subnet_id),
        "availability-zone" => one(&inst.availability_zone),
        "private-ip-address" => one(&inst.private_ip.to_string()),
        "network-interface.network-interface-id" => one(&inst.primary_eni),
        _ => return Err(unknown(name)),
    })
}

pub fn subnet_matches(s: &Subnet, name: &str, values: &[String]) -> Result<bool, ApiError> {
    if let Some(hit) = tags_match(name, values, &s.tags) {
        return Ok(hit);
    }
    let one = |text: &str| any(values, text);
    Ok(match name {
        "subnet-id" => one(&s.id),
        "vpc-id" => one(&s.vpc_id),
        "availability-zone" => one(&s.availability_zone),
        "cidr-block" | "cidr" | "cidrBlock" => one(&s.cidr),
        "state" => one("available"),
        "owner-id" => one(super::ACCOUNT_ID),
        "default-for-az" => one("false"),
        _ => return Err(unknown(name)),
    })
}

pub fn vpc_matches(v: &Vpc, name: &str, values: &[String]) -> Result<bool, ApiError> {
    if let Some(hit) = tags_match(name, values, &v.tags) {
        return Ok(hit);
    }
    let one = |text: &str| any(values, text);
    Ok(match name {
        "vpc-id" => one(&v.id),
        "cidr" | "cidr-block" => one(&v.cidr),
        "cidr-block-association.cidr-block" => v.cidr_blocks.iter().any(|b| one(&b.cidr)),
        "cidr-block-association.association-id" => {
            v.cidr_blocks.iter().any(|b| one(&b.association_id))
        }
        "cidr-block-association.state" => one("associated"),
        "state" => one("available"),
        "owner-id" => one(super::ACCOUNT_ID),
        "is-default" => one("false"),
        _ => return Err(unknown(name)),
    })
}

/// Keeps the items passing every filter (filters AND, values OR).
pub fn keep<T>(
    items: Vec<T>,
    filters: &[(String, Vec<String>)],
    matches: impl Fn(&T, &str, &[String]) -> Result<bool, ApiError>,
) -> Result<Vec<T>, ApiError> {
    let mut out = Vec::with_capacity(items.len());
    'items: for item in items {
        for (name, values) in filters {
            if !matches(&item, name, values)? {
                continue 'items;
            }
        }
        out.push(item);
    }
    Ok(out)
}

/// Checks `MaxResults` against EC2's bounds for the action.
pub fn check_max(max: Option<u32>, lo: u32, hi: u32) -> Result<(), ApiError> {
    match max {
        Some(m) if !(lo..=hi).contains(&m) => Err(ApiError::new(
            "InvalidParameterValue",
            format!("MaxResults {m} must be between {lo} and {hi}"),
        )),
        _ => Ok(()),
    }
}

/// One page of `items` (sorted by `key`): those after the token's key, at
/// most `max`; the token names the last key returned.
pub fn page<T>(
    mut items: Vec<T>,
    key: impl Fn(&T) -> &str,
    max: Option<u32>,
    token: Option<&str>,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    items.sort_by(|a, b| key(a).cmp(key(b)));
    if let Some(t) = token {
        let after = t
            .strip_prefix(TOKEN_PREFIX)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                ApiError::new("InvalidParameterValue", format!("invalid NextToken {t:?}"))
            })?;
        items.retain(|i| key(i) > after);
    }
    let Some(max) = max.map(|m| m as usize) else {
        return Ok((items, None));
    };
    if items.len() <= max {
        return Ok((items, None));
    }
    items.truncate(max);
    let next = items.last().map(|i| format!("{TOKEN_PREFIX}{}", key(i)));
    Ok((items, next))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn glob_wildcards() {
        assert!(glob("aws-K8S-*", "aws-K8S-i-0123"));
        assert!(glob("*", ""));
        assert!(glob("a?c", "abc"));
        assert!(glob("*b*d", "abcbd"));
        assert!(!glob("a?c", "ac"));
        assert!(!glob("abc", "abcd"));
        assert!(!glob("x*", "yx"));
    }

    #[test]
    fn pages_follow_tokens_to_the_end() {
        let items: Vec<String> = (0..12).map(|i| format!("id-{i:02}")).collect();
        let mut seen = Vec::new();
        let mut token = None;
        for _ in 0..10 {
            let (got, next) =
                page(items.clone(), |s| s.as_str(), Some(5), token.as_deref()).unwrap();
            assert!(got.len() <= 5);
            seen.extend(got);
            token = next;
            if token.is_none() {
                break;
            }
        }
        assert_eq!(seen, items);
        assert!(page(items.clone(), |s| s.as_str(), None, Some("bogus")).is_err());
        let (all, none) = page(items.clone(), |s| s.as_str(), None, None).unwrap();
        assert_eq!((all.len(), none), (12, None));
    }

    #[test]
    fn max_results_bounds() {
        assert!(check_max(Some(4), 5, 1000).is_err());
        assert!(check_max(Some(5), 5, 1000).is_ok());
        assert!(check_max(None, 5, 1000).is_ok());
    }

    #[test]
    fn narrowing_keeps_wildcards_for_post_filtering() {
        let mut f = EniFilter::default();
        narrow(&mut f, "status", &["avail*".into()]);
        narrow(&mut f, "vpc-id", &["vpc-1".into()]);
        narrow(&mut f, "tag:k", &["v".into()]);
        assert_eq!(f.status, None);
        assert_eq!(f.vpc_id.as_deref(), Some("vpc-1"));
        assert_eq!(f.tags, vec![("k".to_string(), vec!["v".to_string()])]);
    }
}
