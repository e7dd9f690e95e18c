//! EC2's XML replies as a tree, so properties can edit them by structure (drop, repeat or
//! nest an element, put any text in one) before they are printed.

use proptest::prelude::*;
use proptest::sample::Index;
use vpc_cni_testkit::prop::gen;

/// An element with its text or its children.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Text(String, String),
    Elem(String, Vec<Node>),
    /// An element holding unknown elements nested this deep: a leaf here, so the test's own
    /// recursion (clone, print, drop) stays shallow however deep the text goes.
    Deep(String, usize),
}

/// `<name>text</name>`.
pub fn text(name: &str, value: impl ToString) -> Node {
    Node::Text(name.to_owned(), value.to_string())
}

/// `<name>children</name>`.
pub fn elem(name: &str, children: Vec<Node>) -> Node {
    Node::Elem(name.to_owned(), children)
}

/// A list, as EC2 writes them: `<name><item>..</item>..</name>`.
pub fn set(name: &str, items: impl IntoIterator<Item = Vec<Node>>) -> Node {
    elem(name, items.into_iter().map(|i| elem("item", i)).collect())
}

/// A whole success reply of `action`.
pub fn response(action: &str, body: Vec<Node>) -> Node {
    let mut children = vec![text("requestId", "req-prop")];
    children.extend(body);
    elem(&format!("{action}Response"), children)
}

/// EC2's error document.
pub fn error_document(code: &str, message: &str) -> Node {
    elem(
        "Response",
        vec![
            elem(
                "Errors",
                vec![elem(
                    "Error",
                    vec![text("Code", code), text("Message", message)],
                )],
            ),
            text("RequestID", "req-prop"),
        ],
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

fn write(node: &Node, out: &mut String) {
    match node {
        Node::Text(name, value) => {
            out.push_str(&format!("<{name}>{}</{name}>", escape(value)));
        }
        Node::Elem(name, children) => {
            out.push_str(&format!("<{name}>"));
            for child in children {
                write(child, out);
            }
            out.push_str(&format!("</{name}>"));
        }
        Node::Deep(name, depth) => {
            out.push_str(&format!("<{name}>"));
            out.push_str(&"<nested>".repeat(*depth));
            out.push_str(&"</nested>".repeat(*depth));
            out.push_str(&format!("</{name}>"));
        }
    }
}

/// The document as EC2 sends it.
pub fn render(root: &Node) -> Vec<u8> {
    let mut out = String::from(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    write(root, &mut out);
    out.into_bytes()
}

/// One structural edit; the element is picked among all of them, root excluded, in
/// pre-order.
#[derive(Debug, Clone)]
pub enum XmlEdit {
    Remove(Index),
    /// Any text in place of the element's content: wrong types, huge numbers, unicode.
    SetText(Index, String),
    Repeat(Index),
    /// The element's content replaced by unknown elements nested this deep.
    Nest(Index, usize),
    /// An unknown element beside it, as a newer EC2 may send.
    Unknown(Index, String),
}

pub fn edits(max: usize) -> impl Strategy<Value = Vec<XmlEdit>> {
    let value = prop_oneof![
        gen::string(),
        gen::raw_json(),
        "-?[0-9]{1,25}",
        Just(String::new()),
    ];
    let edit = prop_oneof![
        any::<Index>().prop_map(XmlEdit::Remove),
        (any::<Index>(), value).prop_map(|(i, v)| XmlEdit::SetText(i, v)),
        any::<Index>().prop_map(XmlEdit::Repeat),
        (any::<Index>(), 1usize..20_000).prop_map(|(i, d)| XmlEdit::Nest(i, d)),
        (any::<Index>(), "[a-zA-Z]{1,12}").prop_map(|(i, n)| XmlEdit::Unknown(i, n)),
    ];
    prop::collection::vec(edit, 1..=max)
}

/// Paths (child positions from the root) of every element but the root, in pre-order.
fn paths(node: &Node, here: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
    if let Node::Elem(_, children) = node {
        for (i, child) in children.iter().enumerate() {
            here.push(i);
            out.push(here.clone());
            paths(child, here, out);
            here.pop();
        }
    }
}

fn children_at<'n>(mut node: &'n mut Node, path: &[usize]) -> Option<&'n mut Vec<Node>> {
    for &i in path {
        let Node::Elem(_, children) = node else {
            return None;
        };
        node = children.get_mut(i)?;
    }
    match node {
        Node::Elem(_, children) => Some(children),
        Node::Text(..) | Node::Deep(..) => None,
    }
}

fn name(node: &Node) -> &str {
    match node {
        Node::Text(n, _) | Node::Elem(n, _) | Node::Deep(n, _) => n,
    }
}

/// `root` after `edits`.
pub fn apply(mut root: Node, edits: &[XmlEdit]) -> Node {
    for edit in edits {
        let mut all = Vec::new();
        paths(&root, &mut Vec::new(), &mut all);
        if all.is_empty() {
            break;
        }
        let (XmlEdit::Remove(i)
        | XmlEdit::SetText(i, _)
        | XmlEdit::Repeat(i)
        | XmlEdit::Nest(i, _)
        | XmlEdit::Unknown(i, _)) = edit;
        let path = all[i.index(all.len())].clone();
        let (&at, parent) = path.split_last().unwrap_or((&0, &[]));
        let Some(siblings) = children_at(&mut root, parent) else {
            continue;
        };
        match edit {
            XmlEdit::Remove(_) => {
                siblings.remove(at);
            }
            XmlEdit::SetText(_, value) => {
                let n = name(&siblings[at]).to_owned();
                siblings[at] = Node::Text(n, value.clone());
            }
            XmlEdit::Repeat(_) => {
                let copy = siblings[at].clone();
                siblings.insert(at, copy);
            }
            XmlEdit::Nest(_, depth) => {
                let n = name(&siblings[at]).to_owned();
                siblings[at] = Node::Deep(n, *depth);
            }
            XmlEdit::Unknown(_, unknown) => {
                siblings.insert(at, text(unknown, "?"));
            }
        }
    }
    root
}
