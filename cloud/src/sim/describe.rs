//! DescribeNetworkInterfaces: filters and pagination over the visible model.

use super::addresses::bad_value;
use super::errors::{err, ErrorCode, SimError};
use super::types::{Eni, EniFilter, Page};
use super::SimVpc;

/// Marks our tokens so a foreign or mangled token is refused, not misread.
const TOKEN_PREFIX: &str = "nt1.";

/// EC2's `*` (any run) and `?` (one character) filter wildcards.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative matcher with backtracking to the last `*`.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

impl EniFilter {
    /// Whether `eni` (as currently visible) passes every set filter.
    pub fn matches(&self, eni: &Eni) -> bool {
        if !self.ids.is_empty() && !self.ids.contains(&eni.id) {
            return false;
        }
        if let Some(want) = &self.attachment_instance_id {
            if eni.attachment.as_ref().map(|a| &a.instance_id) != Some(want) {
                return false;
            }
        }
        if self.status.as_ref().is_some_and(|s| *s != eni.status)
            || self.vpc_id.as_ref().is_some_and(|v| *v != eni.vpc_id)
            || self.subnet_id.as_ref().is_some_and(|v| *v != eni.subnet_id)
        {
            return false;
        }
        if !self.tag_keys.is_empty() && !self.tag_keys.iter().any(|k| eni.tags.contains_key(k)) {
            return false;
        }
        for (k, values) in &self.tags {
            match eni.tags.get(k) {
                Some(v) if values.iter().any(|w| glob_match(w, v)) => {}
                _ => return false,
            }
        }
        if let Some(d) = &self.description {
            if !glob_match(d, &eni.description) {
                return false;
            }
        }
        true
    }
}

impl SimVpc {
    /// DescribeNetworkInterfaces, ordered by id. `max_results` (5..=1000)
    /// pages the answer; without it everything comes in one page. The token
    /// carries the last id returned, so ENIs created or deleted between pages
    /// neither repeat nor shift the others.
    pub fn describe_network_interfaces(
        &self,
        filter: &EniFilter,
        max_results: Option<u32>,
        next_token: Option<&str>,
    ) -> Result<Page<Eni>, SimError> {
        if let Some(m) = max_results {
            if !(5..=1000).contains(&m) {
                return bad_value(format!("MaxResults {m} must be between 5 and 1000"));
            }
        }
        let after = match next_token {
            None => None,
            Some(t) => match t.strip_prefix(TOKEN_PREFIX) {
                Some(id) if !id.is_empty() => Some(id.to_string()),
                _ => return bad_value(format!("invalid NextToken {t:?}")),
            },
        };
        self.with(|s| {
            if let Some(missing) = filter.ids.iter().find(|id| !s.enis.contains_key(*id)) {
                return err(
                    ErrorCode::InvalidNetworkInterfaceIdNotFound,
                    format!("The networkInterface ID '{missing}' does not exist"),
                );
            }
            let now = s.now();
            let limit = max_results.map_or(usize::MAX, |m| m as usize);
            let range = match &after {
                Some(a) => s
                    .enis
                    .range::<String, _>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
                None => s.enis.range::<String, _>(..),
            };
            let mut items = Vec::new();
            let mut more = false;
            for rec in range.map(|(_, r)| r) {
                let eni = s.visible_eni(rec, now);
                if !filter.matches(&eni) {
                    continue;
                }
                if items.len() == limit {
                    more = true;
                    break;
                }
                items.push(eni);
            }
            let next_token = if more {
                items
                    .last()
                    .map(|e: &Eni| format!("{TOKEN_PREFIX}{}", e.id))
            } else {
                None
            };
            Ok(Page { items, next_token })
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::glob_match;

    #[test]
    fn glob() {
        assert!(glob_match("aws-K8S-*", "aws-K8S-i-0123"));
        assert!(!glob_match("aws-K8S-*", "other"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "ac"));
        assert!(glob_match("*", ""));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exact2"));
        assert!(glob_match("*b*d", "abcabd"));
    }
}
