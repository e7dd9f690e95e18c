//! vpc-sim served in this process on loopback: the EC2 Query API and a
//! per-instance IMDSv2 listener over one `SimVpc`, each case in its own world.

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use vpc_cni_cloud::sim::SimVpc;
use vpc_cni_integration::vpcsim::{serve_ec2, serve_imds, ImdsResolver};

use crate::world::World;

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
    /// One VPC 10.0.0.0/16, one subnet 10.0.0.0/24, one t3.medium, served.
    pub async fn start() -> Self {
        let sim = SimVpc::new();
        let vpc = sim.create_vpc("10.0.0.0/16").unwrap();
        let subnet = sim
            .create_subnet(&vpc.id, "10.0.0.0/24", "us-west-2a")
            .unwrap();
        let instance = sim.run_instance(&subnet.id, "t3.medium", "node-a").unwrap();
        let world = World {
            vpc_id: vpc.id,
            subnet_id: subnet.id,
            subnet_cidr: subnet.cidr,
            instance_id: instance.id.clone(),
            az: subnet.availability_zone,
        };
        let (ec2, imds) = (listener().await, listener().await);
        let ec2_endpoint = format!("http://{}", ec2.local_addr().unwrap());
        let imds_endpoint = format!("http://{}", imds.local_addr().unwrap());
        let (stop_ec2, ec2_done) = stopper();
        let (stop_imds, imds_done) = stopper();
        tokio::spawn(serve_ec2(sim.clone(), ec2, ec2_done));
        tokio::spawn(serve_imds(
            sim.clone(),
            imds,
            ImdsResolver::Fixed(instance.id),
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
