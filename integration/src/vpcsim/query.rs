//! EC2 Query API requests: form-encoded `Key=Value` pairs where lists are
//! flattened as `Name.1`, `Name.2`, … and structures as `Name.N.Member`.

use std::collections::BTreeMap;

/// A request parameter that is missing or does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamError {
    /// EC2's `MissingParameter`.
    Missing(String),
    /// EC2's `InvalidParameterValue`.
    Invalid { name: String, value: String },
}

/// All parameters of one request, from the query string and the form body.
#[derive(Debug, Clone, Default)]
pub struct Query {
    params: BTreeMap<String, String>,
}

impl Query {
    /// Body parameters win over query-string ones with the same key, as the
    /// SDK only ever sends a body.
    pub fn parse(query_string: Option<&str>, body: &[u8]) -> Self {
        let mut params = BTreeMap::new();
        if let Some(qs) = query_string {
            params.extend(form_urlencoded::parse(qs.as_bytes()).into_owned());
        }
        params.extend(form_urlencoded::parse(body).into_owned());
        Self { params }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }

    pub fn action(&self) -> Option<&str> {
        self.get("Action").filter(|a| !a.is_empty())
    }

    pub fn required(&self, key: &str) -> Result<&str, ParamError> {
        self.get(key)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ParamError::Missing(key.to_string()))
    }

    pub fn u32(&self, key: &str) -> Result<Option<u32>, ParamError> {
        self.get(key)
            .map(|v| {
                v.trim().parse().map_err(|_| ParamError::Invalid {
                    name: key.to_string(),
                    value: v.to_string(),
                })
            })
            .transpose()
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>, ParamError> {
        self.get(key)
            .map(|v| match v.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(ParamError::Invalid {
                    name: key.to_string(),
                    value: v.to_string(),
                }),
            })
            .transpose()
    }

    /// The distinct `N` of keys `{prefix}.N` and `{prefix}.N.…`, ascending.
    pub fn indices(&self, prefix: &str) -> Vec<u32> {
        let dotted = format!("{prefix}.");
        let mut out: Vec<u32> = self
            .params
            .range(dotted.clone()..)
            .take_while(|(k, _)| k.starts_with(&dotted))
            .filter_map(|(k, _)| {
                let rest = &k[dotted.len()..];
                rest.split('.').next().and_then(|n| n.parse().ok())
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The values of `{prefix}.1`, `{prefix}.2`, … in index order.
    pub fn list(&self, prefix: &str) -> Vec<String> {
        self.indices(prefix)
            .into_iter()
            .filter_map(|n| self.get(&format!("{prefix}.{n}")).map(str::to_string))
            .collect()
    }

    /// `{prefix}.N.Key` / `{prefix}.N.Value` pairs (a missing value is "").
    pub fn tags(&self, prefix: &str) -> BTreeMap<String, String> {
        self.indices(prefix)
            .into_iter()
            .filter_map(|n| {
                let key = self.get(&format!("{prefix}.{n}.Key"))?;
                let value = self.get(&format!("{prefix}.{n}.Value")).unwrap_or("");
                Some((key.to_string(), value.to_string()))
            })
            .collect()
    }

    /// `Filter.N.Name` with its `Filter.N.Value.M` values, in index order.
    pub fn filters(&self) -> Vec<(String, Vec<String>)> {
        self.indices("Filter")
            .into_iter()
            .filter_map(|n| {
                let name = self.get(&format!("Filter.{n}.Name"))?;
                Some((name.to_string(), self.list(&format!("Filter.{n}.Value"))))
            })
            .collect()
    }

    /// Tags of every `TagSpecification.N` whose resource type is `resource`
    /// (or unset).
    pub fn tag_specifications(&self, resource: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for n in self.indices("TagSpecification") {
            let kind = self.get(&format!("TagSpecification.{n}.ResourceType"));
            if kind.is_none_or(|k| k == resource) {
                out.extend(self.tags(&format!("TagSpecification.{n}.Tag")));
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn q(body: &str) -> Query {
        Query::parse(None, body.as_bytes())
    }

    #[test]
    fn decodes_form_and_query_string() {
        let query = Query::parse(
            Some("Action=DescribeSubnets&Version=2016-11-15"),
            b"Description=a+b%2Fc&Action=CreateNetworkInterface",
        );
        assert_eq!(query.action(), Some("CreateNetworkInterface"));
        assert_eq!(query.get("Version"), Some("2016-11-15"));
        assert_eq!(query.get("Description"), Some("a b/c"));
        assert_eq!(q("Action=").action(), None);
    }

    #[test]
    fn lists_are_in_numeric_index_order() {
        let query = q("Id.10=j&Id.2=b&Id.1=a&IdX.1=no&Other=1");
        assert_eq!(query.list("Id"), vec!["a", "b", "j"]);
        assert_eq!(query.indices("Id"), vec![1, 2, 10]);
        assert!(query.list("Missing").is_empty());
    }

    #[test]
    fn filters_and_tags() {
        let query = q(
            "Filter.1.Name=tag-key&Filter.1.Value.1=k1&Filter.1.Value.2=k2\
             &Filter.2.Name=vpc-id&Filter.2.Value.1=vpc-1\
             &Tag.1.Key=a&Tag.1.Value=1&Tag.2.Key=b",
        );
        assert_eq!(
            query.filters(),
            vec![
                (
                    "tag-key".to_string(),
                    vec!["k1".to_string(), "k2".to_string()]
                ),
                ("vpc-id".to_string(), vec!["vpc-1".to_string()]),
            ]
        );
        let tags = query.tags("Tag");
        assert_eq!(tags.get("a").map(String::as_str), Some("1"));
        assert_eq!(tags.get("b").map(String::as_str), Some(""));
    }

    #[test]
    fn tag_specifications_pick_the_resource_type() {
        let query = q("TagSpecification.1.ResourceType=network-interface\
             &TagSpecification.1.Tag.1.Key=k&TagSpecification.1.Tag.1.Value=v\
             &TagSpecification.2.ResourceType=instance\
             &TagSpecification.2.Tag.1.Key=other&TagSpecification.2.Tag.1.Value=x");
        let tags = query.tag_specifications("network-interface");
        assert_eq!(tags.len(), 1);
        assert_eq!(tags.get("k").map(String::as_str), Some("v"));
    }

    #[test]
    fn typed_values_report_bad_input() {
        let query = q("N=7&B=True&Bad=x&E=");
        assert_eq!(query.u32("N"), Ok(Some(7)));
        assert_eq!(query.u32("Absent"), Ok(None));
        assert_eq!(query.bool("B"), Ok(Some(true)));
        assert_eq!(
            query.u32("Bad"),
            Err(ParamError::Invalid {
                name: "Bad".into(),
                value: "x".into()
            })
        );
        assert!(query.bool("Bad").is_err());
        assert_eq!(query.required("E"), Err(ParamError::Missing("E".into())));
        assert_eq!(query.required("N"), Ok("7"));
    }
}
