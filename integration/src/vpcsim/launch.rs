//! Starting the servers together on loopback, for tests and `vpc-sim serve`.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use vpc_cni_cloud::sim::SimVpc;

use super::admin::{serve_admin, AdminOptions};
use super::ec2::serve_ec2;
use super::VpcSimError;

/// The EC2 API and the admin API serving one sim; both stop when this is
/// dropped (so a failing test never leaves a server behind).
#[derive(Debug)]
pub struct Running {
    pub sim: SimVpc,
    pub ec2: SocketAddr,
    pub admin: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// `http://ADDR` of the EC2 API, for `AWS_ENDPOINT_URL_EC2`.
    pub fn ec2_url(&self) -> String {
        format!("http://{}", self.ec2)
    }

    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Binds both listeners on `ec2` and `admin` (port 0 picks free ports) and
/// spawns the servers on the current tokio runtime. Instances created
/// through the admin API get a loopback IMDS listener each.
pub async fn start(
    sim: SimVpc,
    ec2: SocketAddr,
    admin: SocketAddr,
) -> Result<Running, VpcSimError> {
    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|e| VpcSimError::Io(format!("binding {addr}: {e}")))
    };
    let ec2_listener = bind(ec2).await?;
    let admin_listener = bind(admin).await?;
    let local = |l: &TcpListener| {
        l.local_addr()
            .map_err(|e| VpcSimError::Io(format!("local address: {e}")))
    };
    let (ec2, admin) = (local(&ec2_listener)?, local(&admin_listener)?);
    let tasks = vec![
        tokio::spawn(serve_ec2(sim.clone(), ec2_listener, std::future::pending())),
        tokio::spawn(serve_admin(
            sim.clone(),
            admin_listener,
            AdminOptions::loopback_imds(),
            std::future::pending(),
        )),
    ];
    Ok(Running {
        sim,
        ec2,
        admin,
        tasks,
    })
}

/// `start` on 127.0.0.1 with free ports.
pub async fn start_loopback(sim: SimVpc) -> Result<Running, VpcSimError> {
    let any: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
    start(sim, any, any).await
}
