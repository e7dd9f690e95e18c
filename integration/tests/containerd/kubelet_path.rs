//! The kubelet's path, for real (issue 13, acceptance 2): `deploy/overlays/vpc` rendered
//! with `kubectl kustomize`, and on each of two vpc-sim instances, the DaemonSet's pod run
//! through containerd's CRI as a kubelet runs it, from the image `deploy/image/build.sh`
//! builds (imported into each node's containerd, never pulled). Then ordinary pods through
//! the CRI against the network configuration ipamd wrote, reaching each other across the
//! nodes, reached by an ALB-style host of the VPC, and reaching the internet. Needs root.
//!
//! How a node is laid out (see `runtime::Placement::KubeletNode`): containerd runs in the
//! instance's network namespace, so the pod's `hostNetwork: true` sandbox (the CRI's NODE
//! network mode) is the instance's network, as a host-network pod's is the node's. The
//! node's files live in a per-node folder: each hostPath `P` of the DaemonSet maps to
//! `<folder>/P`, except `/proc/sys/net`, whose files the kernel resolves against the network
//! namespace of the process that opens them (the node's, for ipamd's). containerd's CNI
//! directories are the folder's `opt/cni/bin` and `etc/cni/net.d`, and containerd, with the
//! plugins it execs, sees the folder's `run` as `/run` (a mount namespace of its own), so
//! the plugin dials ipamd's socket at the path the configuration names, as on a node.
//!
//! The Kubernetes API is the project's stand-in, on a VPC address: the kubelet's service
//! variables point at a service address no kube-proxy serves here, and `CLUSTER_ENDPOINT`
//! (set as an operator's ConfigMap merge would) reaches the API directly, which is what
//! that knob is for. The EC2 endpoint is the fabric's (`AWS_EC2_ENDPOINT`); IMDS answers at
//! its usual address inside the fabric.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use vpc_cni_integration::deploy;
use vpc_cni_integration::fabric::{ec2_url, in_namespace, INTERNET_ADDR};
use vpc_cni_integration::fake_kube::{node_object, Call, FakeKube, TOKEN};
use vpc_cni_integration::image::{build_vpc_cni_image, vpc_cni_image_ref};
use vpc_cni_integration::vpc_cluster::{VpcCluster, SUBNET_CIDR};
use vpc_cni_proto::net::Ipv4Cidr;
use vpc_cni_testkit::process::{run_checked, wait_for};
use vpc_cni_testkit::{require_root, unique_name};

use crate::checks::{exec_ok, fetch_from_pod};
use crate::cri::Pod;
use crate::daemonset::{DaemonSetPod, SERVICE_ACCOUNT_DIR};
use crate::kubelet_node::{KubeletNode, NodeFactsOwned, CONFLIST, IPAMD};
use crate::{HTTPD, INDEX_TEXT};

/// kubelet's max pods on each Node.
const MAX_PODS: &str = "17";
/// Bound for a server to answer (a harness bound).
const SERVE_LIMIT: Duration = Duration::from_secs(20);

#[test]
#[allow(clippy::too_many_lines)]
fn root_the_daemonset_runs_from_its_image_through_the_cri_and_pods_get_vpc_addresses() {
    require_root();
    let mut pod = DaemonSetPod::from_objects(&deploy::render("vpc").unwrap());
    // The manifests name the image this workspace builds.
    assert_eq!(pod.image(), vpc_cni_image_ref());

    let (cluster, instances) =
        VpcCluster::without_ipamd("kpt", &[("kpa", "t3.medium"), ("kpb", "t3.medium")]).unwrap();
    let (api_ns, api_ip) = cluster.attach_host("kube-api").unwrap();
    let kube = FakeKube::start(&api_ns, SocketAddrV4::new(api_ip, 0)).unwrap();
    for instance in &instances {
        let mut node = node_object(&instance.name, instance.private_ip, None);
        node["status"]["capacity"] = json!({ "cpu": "2", "memory": "3977804Ki", "pods": MAX_PODS });
        kube.api().create_node(node).unwrap();
    }
    pod.set_setting("AWS_EC2_ENDPOINT", &ec2_url());
    pod.set_setting("CLUSTER_ENDPOINT", &kube.url());

    let work = tempfile::Builder::new()
        .prefix("vpc-cni-kubelet-path-")
        .tempdir()
        .unwrap();
    let image = build_vpc_cni_image(work.path()).unwrap();
    let facts = NodeFactsOwned {
        service_account: service_account(work.path()),
        service_env: vec![
            ("KUBERNETES_SERVICE_HOST".into(), "10.100.0.1".into()),
            ("KUBERNETES_SERVICE_PORT".into(), "443".into()),
            ("KUBERNETES_SERVICE_PORT_HTTPS".into(), "443".into()),
            ("KUBERNETES_PORT".into(), "tcp://10.100.0.1:443".into()),
        ],
    };

    let mut nodes: Vec<KubeletNode> = instances
        .iter()
        .map(|instance| {
            let netns = cluster.fabric().node(&instance.name).unwrap();
            KubeletNode::prepare(
                &netns,
                &instance.name,
                instance.private_ip,
                &pod,
                std::slice::from_ref(&image),
                &facts,
            )
        })
        .collect();

    // What the image holds, read once for both nodes.
    let image_plugin = image_file_sha256(&image, "opt/vpc-cni/bin/vpc-cni");
    let image_ipamd = image_file_sha256(&image, "opt/vpc-cni/bin/ipamd");
    for node in &mut nodes {
        // The init container installed the image's plugin, a file of its own.
        let installed = node.bin_dir().join("vpc-cni");
        let meta = std::fs::symlink_metadata(&installed).unwrap();
        assert!(
            meta.file_type().is_file(),
            "{} is not a plain file",
            installed.display()
        );
        assert_eq!(
            sha256(&installed),
            image_plugin,
            "the installed plugin is not the image's"
        );

        node.start_ipamd(&pod, &facts);
        // What runs is the image's ipamd.
        let exe = Path::new("/proc")
            .join(node.ipamd_pid().to_string())
            .join("exe");
        assert_eq!(
            sha256(&exe),
            image_ipamd,
            "ipamd's container runs another binary than the image's"
        );
        for kind in ["readinessProbe", "livenessProbe"] {
            let probe = node.run_probe(&pod.probe(IPAMD, kind));
            assert!(probe.success(), "{kind}: {probe:?}\n{}", node.diagnostics());
        }
        let conflist: Value =
            serde_json::from_slice(&std::fs::read(node.conf_dir().join(CONFLIST)).unwrap())
                .unwrap();
        assert_eq!(conflist["plugins"][0]["type"], "vpc-cni", "{conflist}");
        assert_eq!(
            conflist["plugins"][0]["ipamdSocket"],
            "/run/vpc-cni/ipamd.sock"
        );
        // ipamd read its Node through the service account's in-cluster configuration.
        assert!(
            kube.api().requests(&Call::Get(node.name.clone())) >= 1,
            "ipamd never read its Node: {:?}\n{}",
            kube.api().request_log(20),
            node.diagnostics()
        );
        let log = node.container_log(IPAMD);
        assert!(
            log.contains(&format!("Node {}'s status.capacity.pods", node.name)),
            "{}",
            node.diagnostics()
        );
    }

    // Pods through the CRI, on the configuration ipamd wrote: VPC addresses of their node.
    let subnet: Ipv4Cidr = SUBNET_CIDR.parse().unwrap();
    let pods: Vec<(Pod, String)> = nodes
        .iter()
        .zip(&instances)
        .map(|(node, instance)| {
            let pod = node
                .kubelet
                .run_pod(&unique_name(&format!("web-{}-", node.name)), None)
                .unwrap_or_else(|e| panic!("a pod on {}: {e}\n{}", node.name, node.diagnostics()));
            assert!(subnet.contains(pod.ip), "{} is no VPC address", pod.ip);
            let eni = cluster
                .eni_of(pod.ip)
                .expect("an ENI holds the pod's address");
            assert_eq!(
                eni.attachment.map(|a| a.instance_id),
                Some(instance.id.clone()),
                "{}'s address is on another instance's ENI",
                pod.ip
            );
            let web = node.kubelet.start_container(&pod, "web", HTTPD).unwrap();
            (pod, web)
        })
        .collect();

    // Pod to pod across the nodes, both ways.
    for (from, to) in [(0, 1), (1, 0)] {
        let (node, (_, container)) = (&nodes[from], &pods[from]);
        let target = pods[to].0.ip;
        exec_ok(
            &node.kubelet,
            container,
            &["ping", "-c1", "-W2", &target.to_string()],
        );
        let page = fetch_from_pod(&node.kubelet, container, &format!("http://{target}/"));
        assert_eq!(page.trim(), INDEX_TEXT);
    }

    // An ALB-style host of the VPC reaches each pod at its own address.
    let (alb, _alb_ip) = cluster.attach_host("alb").unwrap();
    for (pod, _) in &pods {
        let target = SocketAddr::from((pod.ip, 80));
        let page = wait_for(SERVE_LIMIT, || {
            in_namespace(&alb, move || http_get(target)).ok()
        })
        .unwrap_or_else(|| panic!("the ALB host never got a page from {}", pod.ip));
        assert!(page.contains(INDEX_TEXT), "{page}");
    }

    // The internet sees each pod as its node's primary address (SNAT).
    for ((node, (_, container)), instance) in nodes.iter().zip(&pods).zip(&instances) {
        let peer = internet_peer_of(&cluster, &node.kubelet, container);
        assert_eq!(
            peer,
            IpAddr::V4(instance.private_ip),
            "the internet saw a pod of {} as another address",
            node.name
        );
    }

    // ipamd's own view, through the image's `ipamd inspect` on the node.
    for (node, (pod, _)) in nodes.iter().zip(&pods) {
        assert_eq!(node.pod_ips_ipamd_holds(), vec![pod.ip.to_string()]);
    }

    // As the kubelet deletes them: each DEL runs the image's plugin against ipamd.
    for (node, (pod, _)) in nodes.iter().zip(&pods) {
        node.kubelet.delete_pod(pod).unwrap();
        assert_eq!(node.pod_ips_ipamd_holds(), Vec::<String>::new());
    }
    for node in &nodes {
        node.stop_daemonset_pod(pod.grace_period_s());
        assert!(node.kubelet.list_pod_sandboxes().unwrap().is_empty());
    }
    drop(nodes);
}

/// The files the kubelet projects into the pod at [`SERVICE_ACCOUNT_DIR`]: the token the
/// API accepts, the
/// cluster's CA (a fresh self-signed one: the client loads it even for a plain-HTTP
/// endpoint) and the namespace.
fn service_account(dir: &Path) -> std::path::PathBuf {
    let sa = dir.join("serviceaccount");
    std::fs::create_dir_all(&sa).unwrap();
    std::fs::write(sa.join("token"), TOKEN).unwrap();
    std::fs::write(sa.join("namespace"), "kube-system").unwrap();
    run_checked(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args([
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=kubelet-path-test-ca",
                "-keyout",
            ])
            .arg(dir.join("ca.key"))
            .arg("-out")
            .arg(sa.join("ca.crt")),
    )
    .unwrap();
    assert!(SERVICE_ACCOUNT_DIR.ends_with("serviceaccount"));
    sa
}

/// SHA-256 of a file, hex.
fn sha256(path: &Path) -> String {
    let out = run_checked(Command::new("sha256sum").arg(path)).unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// SHA-256 of the file at `path` in the image archive's layer.
fn image_file_sha256(archive: &Path, path: &str) -> String {
    let script =
        format!("tar -xOf \"$0\" layer.tar | tar -xOf - ./{path} | sha256sum | cut -d' ' -f1");
    let out = run_checked(Command::new("sh").arg("-c").arg(script).arg(archive)).unwrap();
    let sum = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(sum.len(), 64, "no {path} in {}", archive.display());
    sum
}

/// GET / over HTTP/1.0 from the calling namespace; the whole answer.
fn http_get(target: SocketAddr) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&target, Duration::from_secs(3))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

/// Serves one HTTP answer on the internet host and has the pod's container fetch it; the
/// source address the internet host saw.
fn internet_peer_of(
    cluster: &VpcCluster,
    kubelet: &crate::cri::Kubelet,
    container: &str,
) -> IpAddr {
    let listener = in_namespace(cluster.fabric().internet(), || {
        TcpListener::bind((INTERNET_ADDR, 0))
    })
    .unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let server = std::thread::spawn(move || {
        let (mut stream, peer) = wait_for(SERVE_LIMIT * 2, || listener.accept().ok())
            .expect("no connection from the pod reached the internet host");
        stream.set_nonblocking(false).unwrap();
        let mut request = [0u8; 512];
        let _ = stream.read(&mut request);
        stream
            .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 9\r\n\r\ninternet\n")
            .unwrap();
        peer.ip()
    });
    let url = format!("http://{INTERNET_ADDR}:{port}/");
    let page = fetch_from_pod(kubelet, container, &url);
    assert_eq!(page.trim(), "internet");
    server.join().unwrap()
}
