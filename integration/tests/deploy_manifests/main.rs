//! The deployment (deploy/): every overlay renders with `kubectl kustomize` and every object
//! passes kubernetes-validate's strict mode (unknown fields rejected) against a current
//! Kubernetes; the DaemonSet, its settings and the permissions of each mode are what ipamd
//! needs and no more; the admission policy lets ipamd change its own Node's annotations and
//! nothing else; the IAM policy allows exactly the EC2 actions `cloud/` sends.
//!
//! The tools (kubectl, kubernetes-validate, cel-python) come from the project's venv, which
//! `make test` fills (scripts/install-deps.sh). No root needed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admission;
mod hybrid;
mod iam;
mod manifests;
mod tools;
