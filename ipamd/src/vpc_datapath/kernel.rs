//! The parts of the node wiring that are not netlink: our nftables table (through `nft -j`)
//! and `/proc/sys` values.
//!
//! Both act on the calling thread's netns: `nft` is forked from this thread and inherits its
//! namespace, and `/proc/sys/net` resolves against the opener's. So neither may move to
//! another thread (no `spawn_blocking`, no `tokio::fs`): a pool thread could sit in another
//! namespace than the caller.

use nftables::helper::{apply_ruleset_raw_async, NftablesError, DEFAULT_ARGS, DEFAULT_NFT};
use nftables::schema::Nftables;

use super::ruleset::NFT_TABLE;
use super::wiring::Sysctl;
use crate::error::IpamdError;

/// Runs one `nft -j -f -` transaction.
pub(crate) async fn run_nft(batch: &Nftables<'_>, what: &str) -> Result<(), IpamdError> {
    let context = format!("{what} nftables table ip {NFT_TABLE}");
    let payload = serde_json::to_string(batch)
        .map_err(|e| IpamdError::Internal(format!("encoding the nft batch for {context}: {e}")))?;
    apply_ruleset_raw_async(&payload, DEFAULT_NFT, DEFAULT_ARGS)
        .await
        .map(drop)
        .map_err(|err| {
            let detail = match &err {
                NftablesError::NftFailed { stderr, .. } => format!("{err}: {}", stderr.trim()),
                _ => err.to_string(),
            };
            IpamdError::Io {
                context,
                source: std::io::Error::other(detail),
            }
        })
}

/// Writes each value that differs from the kernel's.
pub(crate) fn apply_sysctls(sysctls: &[Sysctl]) -> Result<(), IpamdError> {
    for sysctl in sysctls {
        let current = std::fs::read_to_string(&sysctl.path).map_err(|source| IpamdError::Io {
            context: format!("reading {}", sysctl.path),
            source,
        })?;
        if current.trim() != sysctl.value {
            std::fs::write(&sysctl.path, sysctl.value).map_err(|source| IpamdError::Io {
                context: format!("writing {} to {}", sysctl.value, sysctl.path),
                source,
            })?;
        }
    }
    Ok(())
}
