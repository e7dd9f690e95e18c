//! An ipamd process started inside a test node's namespace.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use vpc_cni::client::IpamdClient;
use vpc_cni_proto::{AttachmentRequest, StatusReply, StatusRequest};

use vpc_cni_testkit::bins;
use vpc_cni_testkit::netns::Netns;
use vpc_cni_testkit::process::block_on;

/// How long a start may take before the harness gives up (a bound, not an assertion).
const START_LIMIT: Duration = Duration::from_secs(30);

/// A running ipamd; killed (SIGKILL) on drop if still running. Stopping and restarting
/// take `&self`, so a chaos thread can kill it while others send it pods.
pub struct IpamdProcess {
    child: Mutex<Option<Child>>,
    netns_path: PathBuf,
    socket: PathBuf,
    state_dir: PathBuf,
    log: PathBuf,
    env: BTreeMap<String, String>,
}

impl IpamdProcess {
    /// Starts ipamd in `netns` with the given environment (plus socket and
    /// state dir under `dir`) and waits until it answers STATUS.
    pub fn start(
        netns: &Netns,
        dir: &Path,
        env: BTreeMap<String, String>,
    ) -> std::io::Result<Self> {
        let proc = Self {
            child: Mutex::new(None),
            netns_path: netns.path(),
            socket: dir.join("ipamd.sock"),
            state_dir: dir.join("state"),
            log: dir.join("ipamd.log"),
            env,
        };
        proc.spawn(netns)?;
        Ok(proc)
    }

    fn child(&self) -> MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn spawn(&self, netns: &Netns) -> std::io::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = netns
            .command(bins::ipamd())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("IPAMD_SOCKET", &self.socket)
            .env("IPAMD_STATE_DIR", &self.state_dir)
            .envs(&self.env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        *self.child() = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&self) -> std::io::Result<()> {
        let started = Instant::now();
        loop {
            let exited = {
                let mut child = self.child();
                match child.as_mut().map(Child::try_wait).transpose()? {
                    Some(Some(status)) => {
                        *child = None;
                        Some(status)
                    }
                    _ => None,
                }
            };
            if let Some(status) = exited {
                return Err(std::io::Error::other(format!(
                    "ipamd exited with {status} at start; log:\n{}",
                    self.log_text()
                )));
            }
            if self.status().is_ok() {
                return Ok(());
            }
            if started.elapsed() > START_LIMIT {
                return Err(std::io::Error::other(format!(
                    "ipamd did not answer within {START_LIMIT:?}; log:\n{}",
                    self.log_text()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Changes one environment variable for the next (re)start.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.insert(key.into(), value.into());
    }

    #[must_use]
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    #[must_use]
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// ipamd's log so far (stderr).
    #[must_use]
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child().as_ref().map(Child::id)
    }

    /// SIGKILL and reap: the crash case.
    pub fn kill9(&self) {
        let taken = self.child().take();
        if let Some(mut child) = taken {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns whether it exited 0.
    pub fn terminate(&self) -> std::io::Result<bool> {
        let taken = self.child().take();
        let Some(mut child) = taken else {
            return Ok(true);
        };
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)
            .map_err(std::io::Error::from)?;
        Ok(child.wait()?.success())
    }

    /// Starts ipamd again with the same settings and state.
    pub fn restart(&self, netns: &Netns) -> std::io::Result<()> {
        self.kill9();
        debug_assert_eq!(netns.path(), self.netns_path);
        self.spawn(netns)
    }

    /// Runs one call on a fresh connection to this ipamd.
    fn call<T, F>(&self, call: impl FnOnce(IpamdClient) -> F) -> Result<T, String>
    where
        F: std::future::Future<Output = Result<T, String>>,
    {
        let socket = self.socket.clone();
        block_on(async move {
            let client = IpamdClient::connect(&socket)
                .await
                .map_err(|e| e.to_string())?;
            call(client).await
        })
    }

    /// The STATUS RPC.
    pub fn status(&self) -> Result<StatusReply, String> {
        self.call(|mut client| async move {
            client
                .rpc()
                .status(StatusRequest::default())
                .await
                .map(tonic::Response::into_inner)
                .map_err(|s| s.to_string())
        })
    }

    /// The CheckNetwork RPC: the address ipamd holds for an attachment, if any.
    pub fn assigned_ip(&self, container_id: &str, ifname: &str) -> Result<Option<String>, String> {
        let request = AttachmentRequest {
            container_id: container_id.into(),
            ifname: ifname.into(),
            ..AttachmentRequest::default()
        };
        self.call(|mut client| async move {
            match client.rpc().check_network(request).await {
                Ok(reply) => Ok(reply.into_inner().ip.map(|ip| ip.address)),
                Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
                Err(s) => Err(s.to_string()),
            }
        })
    }

    /// The AddNetwork RPC alone, without wiring a pod (an ADD cut short).
    pub fn add_network(&self, request: AttachmentRequest) -> Result<String, String> {
        self.call(|mut client| async move {
            let reply = client
                .rpc()
                .add_network(request)
                .await
                .map_err(|s| s.to_string())?
                .into_inner();
            reply
                .ip
                .map(|ip| ip.address)
                .ok_or_else(|| "no address".into())
        })
    }
}

impl Drop for IpamdProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}
