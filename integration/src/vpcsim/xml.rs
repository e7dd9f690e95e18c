//! The XML EC2's Query API answers with: a `<{Action}Response>` envelope in
//! the 2016-11-15 namespace, camelCase elements, lists as `<xSet><item>`, and
//! errors as `<Response><Errors><Error>` (what the SDK's ec2 error parser
//! reads).

/// Namespace the SDK does not check but EC2 always sends.
const NAMESPACE: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";

/// Escapes text for element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
    out
}

/// An append-only XML builder: callers open and close elements in order.
#[derive(Debug, Default)]
pub struct Xml {
    out: String,
}

impl Xml {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn open(&mut self, name: &str) -> &mut Self {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
        self
    }

    pub fn close(&mut self, name: &str) -> &mut Self {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
        self
    }

    /// `<name>text</name>` with the text escaped.
    pub fn text(&mut self, name: &str, value: impl std::fmt::Display) -> &mut Self {
        self.open(name);
        self.out.push_str(&escape(&value.to_string()));
        self.close(name)
    }

    /// `<name>` … `</name>` around whatever `inner` writes.
    pub fn element(&mut self, name: &str, inner: impl FnOnce(&mut Xml)) -> &mut Self {
        self.open(name);
        inner(self);
        self.close(name)
    }

    /// `<name><item>…</item>…</name>`, EC2's list shape; an empty list is
    /// still written (EC2 sends `<groupSet/>`-like empty sets).
    pub fn set<T>(
        &mut self,
        name: &str,
        items: impl IntoIterator<Item = T>,
        mut each: impl FnMut(&mut Xml, T),
    ) -> &mut Self {
        self.open(name);
        for item in items {
            self.open("item");
            each(self, item);
            self.close("item");
        }
        self.close(name)
    }

    pub fn into_string(self) -> String {
        self.out
    }
}

/// A whole success reply for `action` around an already written body.
pub fn response(action: &str, request_id: &str, body: Xml) -> String {
    let mut xml = Xml::new();
    xml.out
        .push_str(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    xml.out.push_str(&format!(
        r#"<{action}Response xmlns="{NAMESPACE}">"#,
        action = escape(action)
    ));
    xml.text("requestId", request_id);
    xml.out.push_str(&body.out);
    xml.close(&format!("{}Response", escape(action)));
    xml.into_string()
}

/// An error reply body, as EC2 sends it (note `RequestID`, not `RequestId`).
pub fn error_document(code: &str, message: &str, request_id: &str) -> String {
    let mut xml = Xml::new();
    xml.out
        .push_str(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    xml.element("Response", |x| {
        x.element("Errors", |x| {
            x.element("Error", |x| {
                x.text("Code", code).text("Message", message);
            });
        })
        .text("RequestID", request_id);
    });
    xml.into_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_characters() {
        assert_eq!(escape(r#"a<b>&"c"'"#), "a&lt;b&gt;&amp;&quot;c&quot;&apos;");
        assert_eq!(escape("plain"), "plain");
    }

    #[test]
    fn response_has_envelope_request_id_and_body() {
        let mut body = Xml::new();
        body.text("return", true);
        let doc = response("CreateTags", "rid-1", body);
        assert_eq!(
            doc,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
             <CreateTagsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\
             <requestId>rid-1</requestId><return>true</return></CreateTagsResponse>"
        );
    }

    #[test]
    fn sets_write_items_and_empty_sets() {
        let mut x = Xml::new();
        x.set("groupSet", ["sg-1", "sg-<2>"], |x, g| {
            x.text("groupId", g);
        });
        x.set("tagSet", Vec::<&str>::new(), |_, _| {});
        assert_eq!(
            x.into_string(),
            "<groupSet><item><groupId>sg-1</groupId></item>\
             <item><groupId>sg-&lt;2&gt;</groupId></item></groupSet><tagSet></tagSet>"
        );
    }

    #[test]
    fn error_document_matches_ec2_shape() {
        let doc = error_document("InvalidAction", "no <such> action", "rid-2");
        assert!(
            doc.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error>")
        );
        assert!(doc.contains("<Code>InvalidAction</Code>"));
        assert!(doc.contains("<Message>no &lt;such&gt; action</Message>"));
        assert!(doc.ends_with("</Errors><RequestID>rid-2</RequestID></Response>"));
    }
}
