//! The demo's connectivity table: one cell per TCP connection, then the address each pod
//! was seen as by the VPC host and by the internet.

use vpc_cni_integration::hybrid_cluster::{HybridPod, Matrix, Outcome};

const WIDTH: usize = 6;

/// The matrix, a line per failure, and the translations the host and the internet saw.
pub fn print(matrix: &Matrix, pods: &[HybridPod]) {
    print!("{:<WIDTH$}", "from\\to");
    for column in &matrix.columns {
        print!(" {:<WIDTH$}", short(column));
    }
    println!();
    for (from, cells) in &matrix.rows {
        print!("{:<WIDTH$}", short(from));
        for cell in cells {
            let text = match cell {
                Outcome::NotAPath => "-",
                Outcome::Ok { .. } => "ok",
                Outcome::WrongSource { .. } | Outcome::Failed(_) => "FAIL",
            };
            print!(" {text:<WIDTH$}");
        }
        println!();
    }
    println!(
        "each cell: a TCP connection whose listener saw the expected source (between pods: \
         the pod's own address);\n'-': the source itself, or no path by design (nothing in \
         the VPC routes on-prem pod CIDRs; the alb has no public address)"
    );
    for failure in matrix.failures() {
        println!("  FAIL {failure}");
    }
    let column = |name: &str| matrix.columns.iter().position(|c| c == name);
    let (Some(host), Some(internet)) = (column("alb"), column("internet")) else {
        return;
    };
    println!(
        "\n{:<6} {:<13} {:<15} seen by the internet as",
        "pod", "own address", "seen by alb as"
    );
    for (pod, (_, cells)) in pods.iter().zip(&matrix.rows) {
        let seen = |cell: &Outcome| match cell {
            Outcome::Ok { seen } => seen.to_string(),
            _ => "FAIL".to_string(),
        };
        let own = pod.ip.map_or("-".to_string(), |ip| ip.to_string());
        println!(
            "{:<6} {own:<13} {:<15} {}",
            pod.name,
            seen(&cells[host]),
            seen(&cells[internet])
        );
    }
}

fn short(name: &str) -> &str {
    match name {
        "internet" => "inet",
        _ => name.get(..WIDTH).unwrap_or(name),
    }
}
