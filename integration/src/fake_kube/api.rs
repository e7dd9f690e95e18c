//! The fake API server's state: Node objects, the global resourceVersion,
//! every change as a watch event, and a count of the requests served. Tests
//! change Nodes through [`KubeApi`] exactly as the HTTP side does, so a
//! watcher cannot tell a test's edit from a controller's.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::{json, Map, Value};
use tokio::sync::broadcast;

/// Events a slow watcher may fall behind by before its watch is ended (it
/// then resumes from the last version it saw, from the history).
const LIVE_BUFFER: usize = 1024;

/// One change, as a watch sends it.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    pub version: u64,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub kind: &'static str,
    pub object: Value,
}

impl WatchEvent {
    /// The event as one line of a watch response.
    #[must_use]
    pub fn line(&self) -> String {
        let mut line = json!({ "type": self.kind, "object": self.object }).to_string();
        line.push('\n');
        line
    }
}

/// What a request asked for, for counting.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Call {
    /// `GET /api/v1/nodes` without `watch`.
    List,
    /// `GET /api/v1/nodes?watch=true`.
    Watch,
    /// `GET /api/v1/nodes/<name>`.
    Get(String),
    /// `PATCH /api/v1/nodes/<name>`.
    Patch(String),
    /// `POST /api/v1/namespaces/<namespace>/events`.
    CreateEvent(String),
    /// `GET /api/v1/namespaces/<namespace>/events`, or `/api/v1/events` (`None`).
    ListEvents(Option<String>),
    /// Anything else, including requests without the right token.
    Other,
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::List => write!(f, "LIST nodes"),
            Self::Watch => write!(f, "WATCH nodes"),
            Self::Get(name) => write!(f, "GET node {name}"),
            Self::Patch(name) => write!(f, "PATCH node {name}"),
            Self::CreateEvent(ns) => write!(f, "CREATE event in {ns}"),
            Self::ListEvents(Some(ns)) => write!(f, "LIST events in {ns}"),
            Self::ListEvents(None) => write!(f, "LIST events"),
            Self::Other => write!(f, "other"),
        }
    }
}

struct Store {
    nodes: BTreeMap<String, Value>,
    version: u64,
    /// Every event since start: a watch from any version the server ever
    /// handed out can be served (this server never answers 410 Gone).
    history: Vec<WatchEvent>,
    calls: BTreeMap<Call, usize>,
    /// core/v1 Events by (namespace, name), as created.
    events: BTreeMap<(String, String), Value>,
    /// `METHOD uri -> status`, oldest first, for diagnostics.
    log: Vec<String>,
}

pub(super) struct Shared {
    store: Mutex<Store>,
    live: broadcast::Sender<WatchEvent>,
    open_watches: AtomicUsize,
}

/// The test's (and the server's) handle on the API's state. Cheap to clone;
/// every clone sees the same Nodes.
#[derive(Clone)]
pub struct KubeApi {
    shared: Arc<Shared>,
}

impl fmt::Debug for KubeApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let store = self.store();
        f.debug_struct("KubeApi")
            .field("version", &store.version)
            .field("nodes", &store.nodes.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Default for KubeApi {
    fn default() -> Self {
        Self::new()
    }
}

impl KubeApi {
    #[must_use]
    pub fn new() -> Self {
        let (live, _) = broadcast::channel(LIVE_BUFFER);
        Self {
            shared: Arc::new(Shared {
                store: Mutex::new(Store {
                    nodes: BTreeMap::new(),
                    // A fresh etcd is not at zero; neither is this.
                    version: 1000,
                    history: Vec::new(),
                    calls: BTreeMap::new(),
                    events: BTreeMap::new(),
                    log: Vec::new(),
                }),
                live,
                open_watches: AtomicUsize::new(0),
            }),
        }
    }

    /// A poisoned lock only means a test thread panicked while holding it;
    /// the map itself is always whole, so carry on.
    fn store(&self) -> MutexGuard<'_, Store> {
        self.shared
            .store
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores `node` as a new object (ADDED): the server fills in uid,
    /// resourceVersion and creationTimestamp. Returns the stored object.
    pub fn create_node(&self, mut node: Value) -> io::Result<Value> {
        let name = object_name(&node)?;
        let mut store = self.store();
        if store.nodes.contains_key(&name) {
            return Err(io::Error::other(format!("Node {name:?} already exists")));
        }
        let version = store.version + 1;
        let meta = metadata(&mut node)?;
        meta.insert(
            "uid".into(),
            json!(format!("6b1d2c3e-5a4f-4e21-9c8d-{version:012x}")),
        );
        meta.insert("creationTimestamp".into(), json!("2026-11-20T08:00:00Z"));
        Ok(store.commit(&self.shared.live, "ADDED", name, node))
    }

    /// Changes a Node with `edit` (MODIFIED), as a controller's update would.
    /// Returns the stored object; no event when `edit` changed nothing.
    pub fn update_node(&self, name: &str, edit: impl FnOnce(&mut Value)) -> io::Result<Value> {
        self.change(name, None, edit)
            .map_err(|refused| match refused {
                Refused::NotFound => not_found(name),
                Refused::Conflict => io::Error::other(format!("Node {name:?} changed meanwhile")),
                Refused::Invalid(why) | Refused::Mismatch(why) | Refused::Exists(why) => {
                    io::Error::other(why)
                }
            })
    }

    /// Applies a JSON merge patch (RFC 7386) to a Node, as `PATCH` with
    /// `application/merge-patch+json` does.
    pub fn merge_patch_node(&self, name: &str, patch: &Value) -> io::Result<Value> {
        self.update_node(name, |node| merge_patch(node, patch))
    }

    /// A client's merge patch: one naming a `metadata.resourceVersion` must
    /// name the current one (optimistic concurrency), checked under the
    /// same lock the change is made under.
    pub(super) fn client_patch(&self, name: &str, patch: &Value) -> Result<Value, Refused> {
        let expected = patch.pointer("/metadata/resourceVersion");
        self.change(name, expected, |node| merge_patch(node, patch))
    }

    fn change(
        &self,
        name: &str,
        expected_version: Option<&Value>,
        edit: impl FnOnce(&mut Value),
    ) -> Result<Value, Refused> {
        let mut store = self.store();
        let current = store.nodes.get(name).cloned().ok_or(Refused::NotFound)?;
        if expected_version.is_some_and(|v| Some(v) != current.pointer("/metadata/resourceVersion"))
        {
            return Err(Refused::Conflict);
        }
        let mut node = current.clone();
        edit(&mut node);
        match object_name(&node) {
            Ok(new) if new == name => {}
            _ => return Err(Refused::Invalid(format!("Node {name:?} cannot be renamed"))),
        }
        if node == current {
            return Ok(current);
        }
        Ok(store.commit(&self.shared.live, "MODIFIED", name.to_string(), node))
    }

    /// Sets (or with `None` removes) a Node's `spec.podCIDR` and `podCIDRs`.
    pub fn set_pod_cidr(&self, name: &str, pod_cidr: Option<&str>) -> io::Result<Value> {
        let spec = match pod_cidr {
            Some(cidr) => json!({ "podCIDR": cidr, "podCIDRs": [cidr] }),
            None => json!({ "podCIDR": null, "podCIDRs": null }),
        };
        self.merge_patch_node(name, &json!({ "spec": spec }))
    }

    /// Sets one annotation on a Node.
    pub fn annotate(&self, name: &str, key: &str, value: &str) -> io::Result<Value> {
        self.merge_patch_node(
            name,
            &json!({ "metadata": { "annotations": { key: value } } }),
        )
    }

    /// Removes a Node (DELETED, carrying its last state at a new version).
    pub fn delete_node(&self, name: &str) -> io::Result<Value> {
        let mut store = self.store();
        let node = store
            .nodes
            .get(name)
            .cloned()
            .ok_or_else(|| not_found(name))?;
        let gone = store.commit(&self.shared.live, "DELETED", name.to_string(), node);
        store.nodes.remove(name);
        Ok(gone)
    }

    /// The stored Node, if any.
    #[must_use]
    pub fn node(&self, name: &str) -> Option<Value> {
        self.store().nodes.get(name).cloned()
    }

    /// Every stored Node, in name order.
    #[must_use]
    pub fn nodes(&self) -> Vec<Value> {
        self.store().nodes.values().cloned().collect()
    }

    /// One annotation of a stored Node.
    #[must_use]
    pub fn annotation(&self, name: &str, key: &str) -> Option<String> {
        self.node(name)?
            .pointer(&format!("/metadata/annotations/{}", key.replace('/', "~1")))?
            .as_str()
            .map(str::to_string)
    }

    /// The current resourceVersion.
    #[must_use]
    pub fn version(&self) -> u64 {
        self.store().version
    }

    /// Creates a core/v1 Event in `namespace` as the API server does: the name from
    /// `metadata.name` or `generateName` plus a suffix, the namespace of the request (an
    /// object naming another is refused), and the legacy rule for an involved object without
    /// a namespace (a Node): the Event must live in `default`. Returns the stored object.
    pub(super) fn create_event(&self, namespace: &str, mut event: Value) -> Result<Value, Refused> {
        let invalid = |why: String| Refused::Invalid(why);
        let involved_ns = event
            .pointer("/involvedObject/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if event
            .pointer("/involvedObject/kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            return Err(invalid("involvedObject.kind: Required value".into()));
        }
        let wanted = if involved_ns.is_empty() {
            "default"
        } else {
            involved_ns.as_str()
        };
        if namespace != wanted {
            return Err(invalid(format!(
                "involvedObject.namespace: Invalid value: \"{involved_ns}\": does not match event.namespace"
            )));
        }
        let mut store = self.store();
        let version = store.version + 1;
        let meta = metadata(&mut event).map_err(|e| invalid(e.to_string()))?;
        match meta.get("namespace").and_then(Value::as_str) {
            Some(ns) if ns != namespace => {
                return Err(Refused::Mismatch(format!(
                    "the namespace of the provided object ({ns}) does not match the namespace sent on the request ({namespace})"
                )))
            }
            _ => {}
        }
        let name = match (
            meta.get("name").and_then(Value::as_str),
            meta.get("generateName").and_then(Value::as_str),
        ) {
            (Some(name), _) if !name.is_empty() => name.to_owned(),
            (_, Some(prefix)) if !prefix.is_empty() => format!("{prefix}{version:x}"),
            _ => {
                return Err(invalid(
                    "metadata.name: Required value: name or generateName is required".into(),
                ))
            }
        };
        if store
            .events
            .contains_key(&(namespace.to_owned(), name.clone()))
        {
            return Err(Refused::Exists(name));
        }
        meta.insert("name".into(), json!(name));
        meta.insert("namespace".into(), json!(namespace));
        meta.insert(
            "uid".into(),
            json!(format!("0e7e1a55-0000-4000-8000-{version:012x}")),
        );
        meta.insert("resourceVersion".into(), json!(version.to_string()));
        meta.insert("creationTimestamp".into(), json!("2026-11-20T08:00:00Z"));
        store.version = version;
        store
            .events
            .insert((namespace.to_owned(), name), event.clone());
        Ok(event)
    }

    /// The Events in `namespace` (every namespace for `None`), by namespace and name.
    #[must_use]
    pub fn events(&self, namespace: Option<&str>) -> Vec<Value> {
        self.store()
            .events
            .iter()
            .filter(|((ns, _), _)| namespace.is_none_or(|want| want == ns))
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// The version a list is consistent with.
    pub(super) fn events_version(&self) -> u64 {
        self.store().version
    }

    /// How many requests of this kind were served.
    #[must_use]
    pub fn requests(&self, call: &Call) -> usize {
        self.store().calls.get(call).copied().unwrap_or(0)
    }

    /// The last `n` requests as `METHOD uri -> status`.
    #[must_use]
    pub fn request_log(&self, n: usize) -> Vec<String> {
        let store = self.store();
        store.log[store.log.len().saturating_sub(n)..].to_vec()
    }

    /// Watches being served right now.
    #[must_use]
    pub fn open_watches(&self) -> usize {
        self.shared.open_watches.load(Ordering::SeqCst)
    }

    pub(super) fn record(&self, call: Call, line: String) {
        let mut store = self.store();
        *store.calls.entry(call).or_insert(0) += 1;
        store.log.push(line);
    }

    pub(super) fn watch_opened(&self) -> WatchGuard {
        self.shared.open_watches.fetch_add(1, Ordering::SeqCst);
        WatchGuard(Arc::clone(&self.shared))
    }

    /// The list: every Node and the version it is consistent with.
    pub(super) fn list(&self) -> (u64, Vec<Value>) {
        let store = self.store();
        (store.version, store.nodes.values().cloned().collect())
    }

    /// Events after `from`, and a receiver for the ones still to come. Both
    /// are taken under the lock every change is made under, so nothing
    /// falls between them. `from` 0 (no version) starts with the current
    /// Nodes as ADDED events, as the API server does.
    pub(super) fn subscribe(
        &self,
        from: u64,
    ) -> (Vec<WatchEvent>, broadcast::Receiver<WatchEvent>) {
        let store = self.store();
        let backlog = if from == 0 {
            store
                .nodes
                .values()
                .map(|node| WatchEvent {
                    version: store.version,
                    kind: "ADDED",
                    object: node.clone(),
                })
                .collect()
        } else {
            store
                .history
                .iter()
                .filter(|e| e.version > from)
                .cloned()
                .collect()
        };
        (backlog, self.shared.live.subscribe())
    }
}

impl Store {
    /// Gives `node` the next version, stores it and tells every watcher.
    fn commit(
        &mut self,
        live: &broadcast::Sender<WatchEvent>,
        kind: &'static str,
        name: String,
        mut node: Value,
    ) -> Value {
        self.version += 1;
        if let Some(meta) = node.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), json!(self.version.to_string()));
        }
        let event = WatchEvent {
            version: self.version,
            kind,
            object: node.clone(),
        };
        self.history.push(event.clone());
        // No watcher listening is not an error.
        let _ = live.send(event);
        self.nodes.insert(name, node.clone());
        node
    }
}

/// Why a change was not made.
#[derive(Debug)]
pub(super) enum Refused {
    NotFound,
    /// The change named a resourceVersion that is no longer current.
    Conflict,
    Invalid(String),
    /// The body's namespace is not the request's (400 BadRequest).
    Mismatch(String),
    /// An object of that name exists (409 AlreadyExists).
    Exists(String),
}

/// Counts a watch as open until dropped.
pub(super) struct WatchGuard(Arc<Shared>);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.open_watches.fetch_sub(1, Ordering::SeqCst);
    }
}

/// RFC 7386: objects merge key by key, `null` removes a key, anything else
/// replaces the target.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(changes) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(fields) = target {
        for (key, change) in changes {
            if change.is_null() {
                fields.remove(key);
            } else {
                merge_patch(fields.entry(key.clone()).or_insert(Value::Null), change);
            }
        }
    }
}

pub(super) fn object_name(node: &Value) -> io::Result<String> {
    node.pointer("/metadata/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .ok_or_else(|| io::Error::other(format!("Node without metadata.name: {node}")))
}

fn metadata(node: &mut Value) -> io::Result<&mut Map<String, Value>> {
    node.get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| io::Error::other("Node without metadata"))
}

fn not_found(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("nodes {name:?} not found"))
}
