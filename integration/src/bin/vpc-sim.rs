//! `vpc-sim`: the simulated VPC as a process. `serve` runs the EC2 API and
//! the admin API (no root, no fabric needed); `node add`, `state`, `faults`
//! and `reset` are clients of the admin API, so a person can bring up a VPC
//! by hand.

use std::io::Write;
use std::net::SocketAddr;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use nix::sys::signal::{SigSet, Signal};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use vpc_cni_cloud::sim::SimVpc;
use vpc_cni_integration::vpcsim::{
    client, serve_admin, serve_ec2, serve_imds, AdminOptions, ImdsResolver,
};

#[derive(Parser)]
#[command(
    name = "vpc-sim",
    about = "A simulated AWS VPC: EC2 Query API, IMDSv2, admin API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the EC2 API and the admin API until SIGTERM or SIGINT. Prints
    /// one JSON line with the bound addresses first.
    Serve(ServeArgs),
    /// Nodes (EC2 instances).
    Node {
        #[command(subcommand)]
        command: NodeCommand,
    },
    /// Print the whole simulated state as JSON.
    State(AdminArg),
    /// Print the faults in force, or replace them with `--set JSON`.
    Faults {
        #[command(flatten)]
        admin: AdminArg,
        /// e.g. '{"throttle_rate":0.2,"latency_ms":50}'
        #[arg(long)]
        set: Option<String>,
    },
    /// Print the request counts per EC2 action.
    Counts(AdminArg),
    /// Empty the world and clear faults and counters.
    Reset(AdminArg),
}

#[derive(clap::Args)]
struct AdminArg {
    /// The admin API's address, as printed by `serve`.
    #[arg(long, env = "VPC_SIM_ADMIN")]
    admin: SocketAddr,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address for the EC2 Query API.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Address for the admin API.
    #[arg(long, default_value = "127.0.0.1:0")]
    admin: SocketAddr,
    /// The VPC created at start.
    #[arg(long, default_value = "10.0.0.0/16")]
    vpc_cidr: String,
    /// The subnet created at start, inside the VPC.
    #[arg(long, default_value = "10.0.0.0/20")]
    subnet: String,
    /// The subnet's availability zone (the region is the zone minus its letter).
    #[arg(long, default_value = "us-west-2a")]
    az: String,
    /// Start with no VPC and no subnet.
    #[arg(long)]
    empty: bool,
    /// Also serve IMDS on this address, identifying callers by source
    /// address (what the network fabric binds at 169.254.169.254).
    #[arg(long)]
    imds: Option<SocketAddr>,
    /// Do not start a loopback IMDS listener per instance created through
    /// the admin API.
    #[arg(long)]
    no_instance_imds: bool,
}

#[derive(Subcommand)]
enum NodeCommand {
    /// Launch an instance; prints it as JSON (with its IMDS endpoint).
    Add {
        #[command(flatten)]
        admin: AdminArg,
        #[arg(long = "type", default_value = "t3.medium")]
        instance_type: String,
        #[arg(long, default_value = "")]
        name: String,
        /// Defaults to the first subnet.
        #[arg(long)]
        subnet: Option<String>,
    },
    /// List instances as JSON.
    List(AdminArg),
    /// Terminate an instance.
    Rm {
        #[command(flatten)]
        admin: AdminArg,
        id: String,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve(args) => serve(args),
        Command::Node { command } => match command {
            NodeCommand::Add {
                admin,
                instance_type,
                name,
                subnet,
            } => {
                let mut body = json!({ "instanceType": instance_type, "name": name });
                if let Some(s) = subnet {
                    body["subnetId"] = Value::String(s);
                }
                call(admin.admin, "POST", "/instances", Some(body))
            }
            NodeCommand::List(a) => call(a.admin, "GET", "/instances", None),
            NodeCommand::Rm { admin, id } => {
                call(admin.admin, "DELETE", &format!("/instances/{id}"), None)
            }
        },
        Command::State(a) => call(a.admin, "GET", "/state", None),
        Command::Faults { admin, set } => match set {
            Some(json) => {
                let body: Value = serde_json::from_str(&json).context("--set is not JSON")?;
                call(admin.admin, "PUT", "/faults", Some(body))
            }
            None => call(admin.admin, "GET", "/faults", None),
        },
        Command::Counts(a) => call(a.admin, "GET", "/counts", None),
        Command::Reset(a) => call(a.admin, "POST", "/reset", None),
    }
}

/// One admin API call; prints the JSON reply, fails on a non-2xx status.
fn call(admin: SocketAddr, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<()> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let reply = client::request(
        admin,
        method,
        path,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )?;
    let value = reply.json()?;
    println!("{}", serde_json::to_string_pretty(&value)?);
    if !(200..300).contains(&reply.status) {
        bail!("{method} {path}: HTTP {}", reply.status);
    }
    Ok(())
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // Blocked before the runtime starts any thread, so every thread inherits
    // the mask and only the waiter below receives the signals.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    signals.thread_block().context("blocking SIGTERM/SIGINT")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(signals.wait());
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let result = runtime.block_on(async move {
        let sim = SimVpc::new();
        let mut world = json!({});
        if !args.empty {
            let vpc = sim.create_vpc(&args.vpc_cidr)?;
            let subnet = sim.create_subnet(&vpc.id, &args.subnet, &args.az)?;
            world = json!({ "vpcId": vpc.id, "subnetId": subnet.id });
        }
        let ec2 = bind(args.listen).await?;
        let admin = bind(args.admin).await?;
        let imds = match args.imds {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        world["ec2"] = json!(ec2.local_addr()?.to_string());
        world["admin"] = json!(admin.local_addr()?.to_string());
        if let Some(l) = &imds {
            world["imds"] = json!(l.local_addr()?.to_string());
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "{world}")?;
        out.flush()?;
        drop(out);

        let options = if args.no_instance_imds {
            AdminOptions::default()
        } else {
            AdminOptions::loopback_imds()
        };
        let imds_server = async {
            match imds {
                Some(l) => {
                    serve_imds(
                        sim.clone(),
                        l,
                        ImdsResolver::BySourceIp,
                        std::future::pending(),
                    )
                    .await
                }
                None => std::future::pending().await,
            }
        };
        let stop = tokio::task::spawn_blocking(move || rx.recv());
        tokio::select! {
            () = serve_ec2(sim.clone(), ec2, std::future::pending()) => {}
            () = serve_admin(sim.clone(), admin, options, std::future::pending()) => {}
            () = imds_server => {}
            sig = stop => {
                if let Ok(Ok(Ok(sig))) = sig {
                    eprintln!("vpc-sim: {sig}, stopping");
                }
            }
        }
        Ok(())
    });
    // Open connections and per-instance IMDS tasks are not worth waiting for.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))
}
