//! Contract suite: every EC2 action ipamd uses, driven through the real
//! aws-sdk-ec2 client (and aws-config's IMDS client) against vpc-sim and,
//! where moto implements EC2 faithfully, against moto too. moto's known
//! deviations are listed once, in `MOTO_DEVIATIONS`, each with its reason.
//! No root needed: everything listens on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cases;
mod imds;
mod moto;
mod sdk;
mod simulated;
mod world;
mod world_cases;

use cases::{Ctx, CASES};

/// Cases moto cannot pass, and why (seen with moto 5.2.5; see
/// shared/research/moto-and-callers.md). Everything else runs against moto.
const MOTO_DEVIATIONS: &[(&str, &str)] = &[
    ("assign_reply_lists_only_new", "moto's AssignPrivateIpAddresses reply lists every address of the ENI, primary included; EC2 lists only the new ones"),
    ("describe_attachment_status_filter", "moto answers HTTP 500 to the attachment.status filter"),
    ("describe_pagination", "moto ignores MaxResults and never paginates DescribeNetworkInterfaces"),
    ("delete_on_termination", "moto ignores ModifyNetworkInterfaceAttribute(DeleteOnTermination)"),
    ("error_codes", "moto lets an attached ENI be deleted and re-attached (EC2: InvalidNetworkInterface.InUse)"),
    ("limits", "moto enforces no per-instance ENI or per-ENI address limits"),
    ("prefix_delegation", "moto silently ignores Ipv4PrefixCount"),
    ("vpc_cidr_block_rules", "moto associates a block overlapping another and disassociates one a subnet lies in"),
    ("terminated_primary_interface_goes", "moto keeps a terminated instance's primary interface (DeleteOnTermination ignored)"),
    ("unknown_security_group_refused", "moto puts security groups that do not exist on an ENI"),
];

/// Runs every case (each in a fresh world) and reports all failures at once.
async fn run_cases(
    backend: &str,
    make_ctx: impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Ctx> + Send>>,
    skip: &[(&str, &str)],
) {
    let mut failures = Vec::new();
    for (name, case) in CASES {
        if let Some((_, why)) = skip.iter().find(|(n, _)| n == name) {
            println!("{backend}: {name}: skipped: {why}");
            continue;
        }
        let ctx = make_ctx().await;
        let outcome = tokio::spawn(async move { case(&ctx).await }).await;
        match outcome {
            Ok(()) => println!("{backend}: {name}: ok"),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{backend} failed cases:\n{}",
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_against_moto() {
    let moto = moto::Moto::start();
    let endpoint = moto.endpoint();
    run_cases(
        "moto",
        move || {
            let client = sdk::ec2_client(&endpoint, 3);
            Box::pin(async move {
                let world = world::build_through_ec2(&client).await;
                Ctx {
                    client,
                    world,
                    _keep: None,
                }
            })
        },
        // CONTRACT_MOTO_ALL=1 runs the deviations too: how to see whether a
        // newer moto has fixed one.
        if std::env::var_os("CONTRACT_MOTO_ALL").is_some() {
            &[]
        } else {
            MOTO_DEVIATIONS
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_against_vpc_sim() {
    run_cases(
        "vpc-sim",
        || {
            Box::pin(async {
                let sim = simulated::Sim::start().await;
                Ctx {
                    client: sdk::ec2_client(&sim.ec2_endpoint, 3),
                    world: sim.world.clone(),
                    _keep: Some(Box::new(sim)),
                }
            })
        },
        &[],
    )
    .await;
}
