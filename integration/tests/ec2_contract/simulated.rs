//! vpc-sim served in this process on loopback: the EC2 Query API and a
//! per-instance IMDSv2 listener over one `SimVpc`, each case in its own world, built through
//! the EC2 API as on moto.

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use vpc_cni_cloud::sim::SimVpc;
use vpc_cni_integration::vpcsim::{serve_ec2, serve_imds, ImdsResolver};

use crate::sdk::ec2_client;
use crate::world::{build_through_ec2, World};

/// A running vpc-sim; its servers stop when this is dropped.
pub struct Sim {
    pub sim: SimVpc,
    pub world: World,
    pub ec2_endpoint: String,
    pub imds_endpoint: String,
    _stop: Vec<oneshot::Sender<()>>,
}

async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

fn stopper() -> (
    oneshot::Sender<()>,
    impl std::future::Future<Output = ()> + Send,
) {
    let (tx, rx) = oneshot::channel::<()>();
    (tx, async move {
        let _ = rx.await;
    })
}

impl Sim {
    /// Served, then one VPC 10.0.0.0/16, one subnet 10.0.0.0/24 and one t3.medium built
    /// through the EC2 API, exactly as on moto.
    pub async fn start() -> Self {
        let sim = SimVpc::new();
        let (ec2, imds) = (listener().await, listener().await);
        let ec2_endpoint = format!("http://{}", ec2.local_addr().unwrap());
        let imds_endpoint = format!("http://{}", imds.local_addr().unwrap());
        let (stop_ec2, ec2_done) = stopper();
        let (stop_imds, imds_done) = stopper();
        tokio::spawn(serve_ec2(sim.clone(), ec2, ec2_done));
        let world = build_through_ec2(&ec2_client(&ec2_endpoint, 3)).await;
        tokio::spawn(serve_imds(
            sim.clone(),
            imds,
            ImdsResolver::Fixed(world.instance_id.clone()),
            imds_done,
        ));
        Self {
            sim,
            world,
            ec2_endpoint,
            imds_endpoint,
            _stop: vec![stop_ec2, stop_imds],
        }
    }
}
