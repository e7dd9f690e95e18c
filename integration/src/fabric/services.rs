//! vpc-sim's EC2 API and IMDS served inside the fabric, as a VPC serves
//! them: IMDS at 169.254.169.254:80 answering each node by its source
//! address, the EC2 API at [`EC2_ENDPOINT`]:80 as a VPC endpoint would.

use std::io;
use std::net::SocketAddr;

use tokio::sync::oneshot;
use vpc_cni_cloud::sim::SimVpc;

use super::{Fabric, EC2_ENDPOINT, IMDS_ADDR};
use crate::vpcsim::{serve_ec2, serve_imds, ImdsResolver};

/// The servers; they stop when this is dropped.
pub struct FabricServices {
    runtime: Option<tokio::runtime::Runtime>,
    stops: Vec<oneshot::Sender<()>>,
}

/// URL of the EC2 API as nodes reach it (`AWS_ENDPOINT_URL_EC2`).
#[must_use]
pub fn ec2_url() -> String {
    format!("http://{EC2_ENDPOINT}")
}

/// URL of IMDS as nodes reach it (`AWS_EC2_METADATA_SERVICE_ENDPOINT`).
#[must_use]
pub fn imds_url() -> String {
    format!("http://{IMDS_ADDR}")
}

impl FabricServices {
    /// Binds both listeners inside `fabric` and serves `sim` on them from a
    /// small runtime of their own, so synchronous tests can use them too.
    pub fn start(fabric: &Fabric, sim: &SimVpc) -> io::Result<Self> {
        let ec2 = fabric.bind_tcp(SocketAddr::from((EC2_ENDPOINT, 80)))?;
        let imds = fabric.bind_tcp(SocketAddr::from((IMDS_ADDR, 80)))?;
        ec2.set_nonblocking(true)?;
        imds.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let (stop_ec2, ec2_stopped) = oneshot::channel::<()>();
        let (stop_imds, imds_stopped) = oneshot::channel::<()>();
        {
            let _entered = runtime.enter();
            let ec2 = tokio::net::TcpListener::from_std(ec2)?;
            let imds = tokio::net::TcpListener::from_std(imds)?;
            runtime.spawn(serve_ec2(sim.clone(), ec2, async move {
                let _ = ec2_stopped.await;
            }));
            runtime.spawn(serve_imds(
                sim.clone(),
                imds,
                ImdsResolver::BySourceIp,
                async move {
                    let _ = imds_stopped.await;
                },
            ));
        }
        Ok(Self {
            runtime: Some(runtime),
            stops: vec![stop_ec2, stop_imds],
        })
    }
}

impl Drop for FabricServices {
    fn drop(&mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(std::time::Duration::from_secs(2));
        }
    }
}
